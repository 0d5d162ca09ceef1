//! The benchmark report: every benchmark at three sizes, each figure a ratio
//! against its reference from the same run, how each grows with the work
//! (the slope), in Markdown with a PNG plot per figure (`bench-report`).
//!
//! A benchmark given `--json FILE` writes one [`Measurement`] there: its
//! size, and for each figure the measured value and the reference's. This
//! module reads them, fits the slopes and draws the plots.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

/// One benchmark run at one size, as a benchmark writes it with `--json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    /// Which benchmark (its section in the report), e.g. `ingest`.
    pub bench: String,
    /// How much work this run did, in `size_unit` (the plots' x axis).
    pub size: f64,
    pub size_unit: String,
    pub figures: Vec<Figure>,
}

/// A measured value and its reference, measured in the same run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. `HTTP upload → Parquet + catalogue`.
    pub name: String,
    /// The reference it is compared with, e.g. `DuckDB COPY, direct`.
    pub reference_name: String,
    /// The unit of both values, e.g. `s`, `ms`, `MiB`.
    pub unit: String,
    pub measured: f64,
    pub reference: f64,
    /// The ratio (measured / reference) the project aims at or under, if any.
    #[serde(default)]
    pub target_ratio: Option<f64>,
}

impl Figure {
    /// A figure without a target ratio (add one with [`Figure::target`]).
    pub fn new(
        name: &str,
        reference_name: &str,
        unit: &str,
        measured: f64,
        reference: f64,
    ) -> Self {
        Self {
            name: name.into(),
            reference_name: reference_name.into(),
            unit: unit.into(),
            measured,
            reference,
            target_ratio: None,
        }
    }

    /// The ratio the project aims at or under.
    pub fn target(mut self, ratio: Option<f64>) -> Self {
        self.target_ratio = ratio;
        self
    }

    pub fn ratio(&self) -> f64 {
        self.measured / self.reference
    }
}

/// Writes a run's measurements as JSON (what a benchmark's `--json FILE`
/// does; one run may feed several sections, e.g. ingest time and memory).
pub fn write(path: &Path, measurements: &[Measurement]) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(measurements)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads what [`write`] wrote.
pub fn read(path: &Path) -> anyhow::Result<Vec<Measurement>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The exponent `k` of the power law `y = c · x^k` that fits the points best
/// (least squares on logarithms): 1 means the cost grows in proportion to the
/// work, 0 that it does not grow. `None` with fewer than two distinct sizes
/// or a value that is not positive.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.iter().any(|&(x, y)| x <= 0.0 || y <= 0.0) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 1e-12).then(|| sxy / sxx)
}

/// One figure of one benchmark across its sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub bench: String,
    pub name: String,
    pub reference_name: String,
    pub unit: String,
    pub size_unit: String,
    pub target_ratio: Option<f64>,
    /// (size, measured, reference), by size.
    pub points: Vec<(f64, f64, f64)>,
}

impl Series {
    pub fn measured_slope(&self) -> Option<f64> {
        slope(&self.points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>())
    }

    pub fn reference_slope(&self) -> Option<f64> {
        slope(&self.points.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>())
    }

    /// A file name for its plot: the bench and figure, in plain characters.
    pub fn plot_name(&self) -> String {
        let mut name = String::new();
        for c in format!("{}-{}", self.bench, self.name).chars() {
            if c.is_ascii_alphanumeric() {
                name.push(c.to_ascii_lowercase());
            } else if !name.ends_with('-') {
                name.push('-');
            }
        }
        format!("{}.png", name.trim_end_matches('-'))
    }
}

/// The measurements grouped into one series per (bench, figure), in the order
/// they first appear, each sorted by size.
pub fn series(measurements: &[Measurement]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for m in measurements {
        for f in &m.figures {
            let at = out
                .iter()
                .position(|s| s.bench == m.bench && s.name == f.name);
            let series = match at {
                Some(i) => &mut out[i],
                None => {
                    out.push(Series {
                        bench: m.bench.clone(),
                        name: f.name.clone(),
                        reference_name: f.reference_name.clone(),
                        unit: f.unit.clone(),
                        size_unit: m.size_unit.clone(),
                        target_ratio: f.target_ratio,
                        points: Vec::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            series.points.push((m.size, f.measured, f.reference));
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// A table value: about three significant digits, no trailing zeros.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{} M", trim_zeros(format!("{:.2}", v / 1e6)))
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        trim_zeros(format!("{v:.1}"))
    } else if a >= 0.1 || a == 0.0 {
        trim_zeros(format!("{v:.2}"))
    } else {
        trim_zeros(format!("{v:.4}"))
    }
}

fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// An axis label: short (the labels of a log axis sit close together).
fn axis_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim_zero(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim_zero(v / 1e3))
    } else {
        trim_zero(v)
    }
}

/// `v` with at most one decimal under 10 (two under 1), none above.
fn trim_zero(v: f64) -> String {
    trim_zeros(if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    })
}

fn exponent(k: Option<f64>) -> String {
    k.map_or("–".into(), |k| format!("{k:.2}"))
}

/// The report's Markdown: a summary table (each figure's ratio at every size
/// and the slopes), then a section per series with its table and plot.
/// `plots` is the directory the PNGs are in, relative to the report.
pub fn markdown(title: &str, preamble: &str, series: &[Series], plots: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {title}\n\n{preamble}\n");
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "Ratio = measured / reference, from the same run, at each size (smallest first). \
         Slope = k in cost ∝ size^k, fitted over the sizes: 1 grows in proportion to the \
         work, 0 not at all.\n"
    );
    let _ = writeln!(
        md,
        "| benchmark | figure | reference | ratio at each size | target | slope (measured) | slope (reference) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---:|---:|");
    for s in series {
        let ratios: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.2}", p.1 / p.2))
            .collect();
        let target = s.target_ratio.map_or("–".into(), |t| {
            let worst = s.points.iter().map(|p| p.1 / p.2).fold(0.0, f64::max);
            format!("≤ {t:.2} ({})", if worst <= t { "met" } else { "not met" })
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.bench,
            s.name,
            s.reference_name,
            ratios.join(" · "),
            target,
            exponent(s.measured_slope()),
            exponent(s.reference_slope())
        );
    }
    let mut bench = "";
    for s in series {
        if s.bench != bench {
            bench = &s.bench;
            let _ = writeln!(md, "\n## {bench}");
        }
        let _ = writeln!(md, "\n### {}\n", s.name);
        let _ = writeln!(
            md,
            "| {} | measured ({}) | reference: {} ({}) | ratio |",
            s.size_unit, s.unit, s.reference_name, s.unit
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|");
        for p in &s.points {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} |",
                number(p.0),
                number(p.1),
                number(p.2),
                p.1 / p.2
            );
        }
        let _ = writeln!(
            md,
            "\nSlope: measured {}, reference {}.\n\n![{} — {}]({}/{})",
            exponent(s.measured_slope()),
            exponent(s.reference_slope()),
            s.bench,
            s.name,
            plots,
            s.plot_name()
        );
    }
    md
}

/// Registers a TrueType font for the plots' text (plotters draws text with
/// ab_glyph from a font it is given, so no font library is linked).
pub fn load_font() -> anyhow::Result<()> {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    let path = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no TrueType font for the plots: install fonts-dejavu-core (.ci/bench does)")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(&path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable font", path.display()))?;
    Ok(())
}

/// Draws a series as a PNG: measured and reference against size, on linear
/// axes from zero (the slope is in the report's table).
pub fn plot(series: &Series, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (760, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = series.points.iter().map(|p| p.0).fold(0.0, f64::max);
        let y_max = series
            .points
            .iter()
            .flat_map(|p| [p.1, p.2])
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: {}", series.bench, series.name),
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max * 1.08, 0.0..y_max * 1.2)?;
        chart
            .configure_mesh()
            .x_desc(series.size_unit.as_str())
            .y_desc(series.unit.as_str())
            .label_style(("sans-serif", 13))
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|v| axis_number(*v))
            .y_label_formatter(&|v| axis_number(*v))
            .draw()?;
        let lines = [
            (format!("measured: {}", series.name), BLUE, 1usize),
            (format!("reference: {}", series.reference_name), RED, 2usize),
        ];
        for (label, colour, column) in lines {
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .map(|p| (p.0, if column == 1 { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("plotting {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(size: f64, measured: f64, reference: f64) -> Measurement {
        Measurement {
            bench: "ingest".into(),
            size,
            size_unit: "MB".into(),
            figures: vec![Figure {
                name: "upload".into(),
                reference_name: "DuckDB COPY".into(),
                unit: "s".into(),
                measured,
                reference,
                target_ratio: Some(1.0),
            }],
        }
    }

    #[test]
    fn slope_is_the_power_laws_exponent() {
        let linear: Vec<(f64, f64)> = [10.0, 100.0, 1000.0]
            .iter()
            .map(|&x| (x, 3.0 * x))
            .collect();
        assert!((slope(&linear).unwrap() - 1.0).abs() < 1e-9);
        let flat = [(1.0, 5.0), (10.0, 5.0), (100.0, 5.0)];
        assert!(slope(&flat).unwrap().abs() < 1e-9);
        let square: Vec<(f64, f64)> = [2.0, 4.0, 8.0].iter().map(|&x| (x, x * x)).collect();
        assert!((slope(&square).unwrap() - 2.0).abs() < 1e-9);
        // One size, or a zero, has no slope.
        assert_eq!(slope(&[(5.0, 1.0), (5.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 0.0), (2.0, 1.0)]), None);
    }

    #[test]
    fn series_gather_sizes_in_order_and_report_ratios_and_slopes() {
        let runs = vec![
            measurement(1000.0, 11.0, 10.0),
            measurement(100.0, 1.2, 1.0),
            measurement(300.0, 3.3, 3.0),
        ];
        let all = series(&runs);
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!(
            s.points,
            vec![(100.0, 1.2, 1.0), (300.0, 3.3, 3.0), (1000.0, 11.0, 10.0)]
        );
        assert_eq!(s.plot_name(), "ingest-upload.png");
        let md = markdown("Report", "machine", &all, "plots");
        assert!(md
            .contains("| ingest | upload | DuckDB COPY | 1.20 · 1.10 · 1.10 | ≤ 1.00 (not met) |"));
        assert!(md.contains("![ingest — upload](plots/ingest-upload.png)"));
        // A round trip through the JSON a benchmark writes.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.json");
        write(&file, &runs).unwrap();
        assert_eq!(read(&file).unwrap(), runs);
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_number(10.0), "10");
        assert_eq!(axis_number(2.5), "2.5");
        assert_eq!(axis_number(0.25), "0.25");
        assert_eq!(axis_number(3_400_000.0), "3.4M");
        assert_eq!(axis_number(300_000.0), "300k");
        assert_eq!(axis_number(1_000.0), "1k");
    }

    #[test]
    fn table_numbers_keep_three_digits_without_trailing_zeros() {
        assert_eq!(number(50.0), "50");
        assert_eq!(number(92.34), "92.3");
        assert_eq!(number(175.4), "175");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.0123), "0.0123");
        assert_eq!(number(3_400_000.0), "3.4 M");
        assert_eq!(number(10_000_000.0), "10 M");
    }

    #[test]
    fn a_plot_is_a_png() {
        // .ci/test and .ci/bench install the font if it is missing.
        load_font().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = &series(&[
            measurement(100.0, 1.2, 1.0),
            measurement(1000.0, 11.0, 10.0),
        ])[0];
        let path = dir.path().join(s.plot_name());
        plot(s, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            bytes.len() > 2000,
            "a blank image is smaller: {}",
            bytes.len()
        );
    }
}
