//! Typed settings from the environment, shared by both binaries: a lookup
//! function (so tests need not touch the process environment), errors that
//! name the variable, and the parsers both servers need.

use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required but not set ({hint})")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    pub fn invalid(
        name: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            name,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Reads variables through a lookup function; empty values count as unset.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The trimmed value, if set and not empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.raw(name).ok_or(ConfigError::Missing { name, hint })
    }

    pub fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|e: T::Err| ConfigError::invalid(name, value, e.to_string())),
        }
    }

    /// Like [`Env::parse`], and at least `min`.
    pub fn parse_at_least<T>(
        &self,
        name: &'static str,
        default: T,
        min: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value < min {
            return Err(ConfigError::invalid(
                name,
                value.to_string(),
                format!("must be at least {min}"),
            ));
        }
        Ok(value)
    }

    /// The value (or `default`) as `check` reads it; `check` says why a value
    /// is invalid.
    pub fn checked<T>(
        &self,
        name: &'static str,
        default: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        check(&value).map_err(|reason| ConfigError::invalid(name, value, reason))
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(name, value, "expected true or false")),
            },
        }
    }

    /// A byte size (`2GiB`, `500MB`, `1048576`).
    pub fn byte_size(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => {
                parse_byte_size(&value).map_err(|reason| ConfigError::invalid(name, value, reason))
            }
        }
    }

    /// An http(s) URL without a trailing slash, if set.
    pub fn optional_http_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Some(url.trim_end_matches('/').to_owned()))
            }
            Some(url) => Err(ConfigError::invalid(
                name,
                url,
                "expected an http:// or https:// URL",
            )),
        }
    }

    pub fn http_url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .optional_http_url(name)?
            .unwrap_or_else(|| default.to_owned()))
    }
}

/// `2GiB`, `500MB`, `1048576` → bytes (never zero).
pub fn parse_byte_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a number of bytes, e.g. 2GiB".to_owned())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| "too large".to_owned())?;
    if bytes == 0 {
        return Err("must be greater than zero".to_owned());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn byte_sizes_accept_units() {
        assert_eq!(parse_byte_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_byte_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_byte_size("2 GB").unwrap(), 2_000_000_000);
        assert!(parse_byte_size("2 parsecs").is_err());
        assert!(parse_byte_size("0").is_err());
    }

    #[test]
    fn errors_name_the_variable() {
        let e = env(&[("A", "lots"), ("B", "maybe"), ("C", "ftp://x"), ("D", "0")]);
        for err in [
            e.byte_size("A", 1).unwrap_err(),
            e.flag("B", false).unwrap_err(),
            e.optional_http_url("C").unwrap_err(),
            e.parse_at_least("D", 5u32, 1).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.starts_with(['A', 'B', 'C', 'D']), "{text}");
        }
        assert!(e
            .required("X", "a hint")
            .unwrap_err()
            .to_string()
            .contains("a hint"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = env(&[("A", "  "), ("U", "http://h:1/")]);
        assert_eq!(e.parse("A", 7u32).unwrap(), 7);
        assert_eq!(e.http_url("U", "x").unwrap(), "http://h:1");
    }
}
