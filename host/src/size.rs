//! Parsing of memory sizes and guest addresses given on the command line.

/// A size or address the user typed that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not a number with an optional unit.
    #[error("'{0}' is not a size: use e.g. 2M, 512K, 1G, 4MiB or a byte count")]
    BadSize(String),
    /// Not a decimal or 0x-hex number.
    #[error("'{0}' is not an address: use e.g. 0x100000 or 1048576")]
    BadAddr(String),
    /// Not a duration with a unit.
    #[error("'{0}' is not a duration: use e.g. 500ms, 2s, 1.5s, 1m")]
    BadDuration(String),
    /// A duration of zero (or less).
    #[error("'{0}' is too short: a duration must be longer than zero, e.g. 10ms")]
    NotPositive(String),
    /// A duration longer than 31 years.
    #[error("'{0}' is too long: at most 1000000000s")]
    TooLong(String),
}

/// Parses "2M", "2MiB", "512k", "1G", "4096" (bytes) or "0x200000".
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let bad = || ParseError::BadSize(s.to_string());
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, shift) = [
        ("kib", 10),
        ("mib", 20),
        ("gib", 30),
        ("kb", 10),
        ("mb", 20),
        ("gb", 30),
        ("k", 10),
        ("m", 20),
        ("g", 30),
        ("b", 0),
    ]
    .iter()
    .find_map(|(suf, sh)| lower.strip_suffix(suf).map(|n| (n.trim(), *sh)))
    .unwrap_or((lower.as_str(), 0));
    let n = parse_u64(num).ok_or_else(bad)?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Parses "500ms", "2s", "1.5s", "1m", "100us".
pub fn parse_duration(s: &str) -> Result<std::time::Duration, ParseError> {
    let bad = || ParseError::BadDuration(s.to_string());
    let t = s.trim();
    let (num, scale) = [("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0)]
        .iter()
        .find_map(|(suf, k)| t.strip_suffix(suf).map(|n| (n, *k)))
        .ok_or_else(bad)?;
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let secs = v * scale;
    if !secs.is_finite() {
        return Err(bad());
    }
    if secs <= 0.0 {
        return Err(ParseError::NotPositive(s.to_string()));
    }
    if secs > 1e9 {
        return Err(ParseError::TooLong(s.to_string()));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses "0x100000" or "1048576".
pub fn parse_addr(s: &str) -> Result<u64, ParseError> {
    parse_u64(s.trim()).ok_or_else(|| ParseError::BadAddr(s.to_string()))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// "2 MiB", "512 KiB", "4097 B": the largest exact binary unit.
pub fn human(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// A count of thousandths shown with three decimals ("0.446"), without
/// float formatting: its digit generation takes a different code path for
/// some values (Grisu falls back to Dragon), so `host run hello` would run
/// different functions from run to run (tools/order-file --check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thousandths(pub u64);

impl Thousandths {
    /// A duration in milliseconds (rounded to the microsecond).
    pub fn ms(d: std::time::Duration) -> Thousandths {
        Thousandths(((d.as_nanos() + 500) / 1000).min(u64::MAX as u128) as u64)
    }
}

impl std::fmt::Display for Thousandths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// `--json` writes addresses (GPAs, GVAs, HVAs, register and table-entry
/// values) as "0x..." strings, as the text output does; counts, sizes and
/// ports stay numbers. `#[serde(serialize_with = "crate::size::hex")]`.
pub fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#x}"))
}

/// [`hex`] for an optional address (`null` when absent).
pub fn hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousandths_print_three_decimals_as_floats_did() {
        use super::Thousandths;
        use std::time::Duration;
        assert_eq!(
            Thousandths::ms(Duration::from_nanos(446_499)).to_string(),
            "0.446"
        );
        assert_eq!(
            Thousandths::ms(Duration::from_nanos(446_500)).to_string(),
            "0.447"
        );
        assert_eq!(
            Thousandths::ms(Duration::from_millis(80159)).to_string(),
            "80159.000"
        );
        assert_eq!(Thousandths(5).to_string(), "0.005");
        assert_eq!(Thousandths(12_345).to_string(), "12.345");
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x200000"), Ok(2 << 20));
        assert!(parse_size("two").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999G").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        for bad in ["", "5", "-1s", "0s", "nans", "1e300s", "fast"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addrs_and_human() {
        assert_eq!(parse_addr("0x100000"), Ok(0x10_0000));
        assert_eq!(parse_addr("4096"), Ok(4096));
        assert!(parse_addr("0xzz").is_err());
        assert_eq!(human(2 << 20), "2 MiB");
        assert_eq!(human(4097), "4097 B");
        assert_eq!(human(0), "0 B");
    }
}
