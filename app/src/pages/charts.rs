//! Charts as SVG markup, drawn the same way on the server (the monitoring
//! page) and in the browser (the query page's chart island). Every text
//! that goes in is escaped.

/// The chart as SVG markup: `y` against `x` (categories for a bar chart,
/// numbers otherwise when they parse). Text is escaped.
pub fn chart_svg(kind: &str, rows: &[Vec<Option<String>>], x: usize, y: usize) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const PAD: f64 = 30.0;
    let points: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| {
            let yv = r.get(y)?.as_deref()?.parse::<f64>().ok()?;
            let xv = r.get(x).cloned().flatten().unwrap_or_default();
            yv.is_finite().then_some((xv, yv))
        })
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let (ymin, ymax) = points.iter().fold((0f64, f64::MIN), |(lo, hi), (_, v)| {
        (lo.min(*v), hi.max(*v))
    });
    let yspan = if ymax > ymin { ymax - ymin } else { 1.0 };
    let ypix = |v: f64| H - PAD - (v - ymin) / yspan * (H - 2.0 * PAD);
    let xs: Option<Vec<f64>> = points.iter().map(|(x, _)| x.parse::<f64>().ok()).collect();
    let n = points.len() as f64;
    let xpix: Vec<f64> = match (&xs, kind) {
        (Some(xs), "line" | "scatter") => {
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            xs.iter()
                .map(|v| PAD + (v - lo) / span * (W - 2.0 * PAD))
                .collect()
        }
        _ => (0..points.len())
            .map(|i| PAD + (i as f64 + 0.5) * (W - 2.0 * PAD) / n)
            .collect(),
    };
    let mut body = String::new();
    match kind {
        "line" => {
            let mut order: Vec<usize> = (0..points.len()).collect();
            order.sort_by(|a, b| xpix[*a].total_cmp(&xpix[*b]));
            let path: Vec<String> = order
                .iter()
                .map(|&i| format!("{:.1},{:.1}", xpix[i], ypix(points[i].1)))
                .collect();
            body.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            ));
        }
        "scatter" => {
            for (i, (_, v)) in points.iter().enumerate() {
                body.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"currentColor\"/>",
                    xpix[i],
                    ypix(*v)
                ));
            }
        }
        _ => {
            let width = ((W - 2.0 * PAD) / n * 0.8).max(1.0);
            let base = ypix(0f64.max(ymin));
            for (i, (label, v)) in points.iter().enumerate() {
                let top = ypix(*v).min(base);
                let height = (ypix(*v) - base).abs().max(0.5);
                body.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"currentColor\"><title>{}: {v}</title></rect>",
                    xpix[i] - width / 2.0,
                    escape(label)
                ));
            }
        }
    }
    format!(
        "<svg class=\"chart-svg\" role=\"img\" aria-label=\"{kind} chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\">\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{PAD}\" font-size=\"10\">{ymax}</text>\
         <text x=\"2\" y=\"{b}\" font-size=\"10\">{ymin}</text>{body}</svg>",
        b = H - PAD,
        r = W - PAD,
        ymax = escape(&format!("{ymax}")),
        ymin = escape(&format!("{ymin}")),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One series of a stacked bar chart: its CSS class (its colour) and one
/// value per bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<f64>,
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 30.0;

/// Vertical bars, one per label, each the stack of every series' value at
/// that place. The first and last labels are written under the axis.
pub fn stacked_svg(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let n = labels.len();
    if n == 0 {
        return String::new();
    }
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let step = (W - 2.0 * PAD) / n as f64;
    let width = (step * 0.8).max(1.0);
    let mut body = String::new();
    for (i, label) in labels.iter().enumerate() {
        let mut top = H - PAD;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let height = v / max * (H - 2.0 * PAD);
            top -= height;
            body.push_str(&format!(
                "<rect class=\"{}\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\"><title>{} · {}: {}</title></rect>",
                escape(s.class),
                PAD + i as f64 * step + (step - width) / 2.0,
                escape(label),
                escape(s.name),
                number(v)
            ));
        }
    }
    let legend: String = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let x = PAD + i as f64 * 110.0;
            format!(
                "<rect class=\"{}\" x=\"{x}\" y=\"4\" width=\"10\" height=\"10\"/><text x=\"{}\" y=\"13\" font-size=\"11\">{}</text>",
                escape(s.class),
                x + 14.0,
                escape(s.name)
            )
        })
        .collect();
    frame(
        title,
        &format!(
            "{legend}{body}<text x=\"{PAD}\" y=\"{}\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            H - PAD + 14.0,
            escape(&labels[0]),
            W - PAD,
            H - PAD + 14.0,
            escape(&labels[n - 1]),
        ),
        &number(max),
    )
}

/// Horizontal bars, one per item, labelled with the item and its value.
pub fn hbar_svg(title: &str, items: &[(String, f64)], unit: &str) -> String {
    if items.is_empty() {
        return String::new();
    }
    const ROW: f64 = 22.0;
    const LABEL: f64 = 260.0;
    let max = items
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let height = ROW * items.len() as f64 + 8.0;
    let mut body = String::new();
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 4.0 + i as f64 * ROW;
        let width = (v / max * (W - LABEL - 70.0)).max(1.0);
        let short: String = if label.chars().count() > 42 {
            label.chars().take(41).chain(['…']).collect()
        } else {
            label.clone()
        };
        body.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"currentColor\"><title>{}: {} {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{} {}</text>",
            y + 13.0,
            escape(&short),
            ROW - 6.0,
            escape(label),
            number(*v),
            escape(unit),
            LABEL + width + 4.0,
            y + 13.0,
            number(*v),
            escape(unit),
        ));
    }
    format!(
        "<svg class=\"chart-svg\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {W} {height}\" width=\"100%\">{body}</svg>",
        escape(title)
    )
}

/// The SVG around a vertical chart: its axis and its top value.
fn frame(title: &str, body: &str, top: &str) -> String {
    format!(
        "<svg class=\"chart-svg\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"100%\">\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{PAD}\" font-size=\"10\">{}</text>{body}</svg>",
        escape(title),
        escape(top),
        b = H - PAD,
        r = W - PAD,
    )
}

/// A value as a short number: whole when it is, else one decimal.
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::{chart_svg, hbar_svg, stacked_svg, Series};

    fn rows(values: &[(&str, &str)]) -> Vec<Vec<Option<String>>> {
        values
            .iter()
            .map(|(x, y)| vec![Some((*x).to_owned()), Some((*y).to_owned())])
            .collect()
    }

    #[test]
    fn charts_draw_one_mark_per_row_and_escape_labels() {
        let data = rows(&[
            ("<b>Oslo</b>", "709037"),
            ("Lyon", "-522250"),
            ("Bergen", "NA"),
        ]);
        let bar = chart_svg("bar", &data, 0, 1);
        assert_eq!(bar.matches("<rect").count(), 2, "the NA row is skipped");
        assert!(bar.contains("&lt;b&gt;Oslo"), "{bar}");
        assert!(!bar.contains("<b>"));
        let numbers = rows(&[("1", "2"), ("3", "4"), ("2", "9")]);
        assert_eq!(
            chart_svg("scatter", &numbers, 0, 1)
                .matches("<circle")
                .count(),
            3
        );
        assert!(chart_svg("line", &numbers, 0, 1).contains("<polyline"));
        assert_eq!(chart_svg("bar", &[], 0, 1), "");
    }

    #[test]
    fn stacked_and_horizontal_bars_draw_each_value_once_and_escape_text() {
        let labels = vec!["10:00".to_owned(), "11:00".to_owned(), "<12>".to_owned()];
        let svg = stacked_svg(
            "syncs",
            &labels,
            &[
                Series {
                    name: "ok",
                    class: "ok",
                    values: vec![3.0, 0.0, 1.0],
                },
                Series {
                    name: "failed",
                    class: "bad",
                    values: vec![1.0, 0.0, 0.0],
                },
            ],
        );
        // Three non-zero values, and one legend swatch per series.
        assert_eq!(svg.matches("<rect").count(), 3 + 2, "{svg}");
        assert!(svg.contains("&lt;12&gt;") && !svg.contains("<12>"), "{svg}");
        assert_eq!(stacked_svg("none", &[], &[]), "");

        let causes = vec![
            ("bronze: <b>timeout</b>".to_owned(), 4.0),
            ("silver: cannot be reached".to_owned(), 1.5),
        ];
        let svg = hbar_svg("causes", &causes, "ms");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("1.5 ms") && svg.contains("&lt;b&gt;"), "{svg}");
        assert!(!svg.contains("<b>"));
        assert_eq!(hbar_svg("none", &[], ""), "");
    }
}
