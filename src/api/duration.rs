//! Go-style durations (`2160h`, `1h30m`, `90s`), the syntax cert-manager uses
//! for `duration` and `renewBefore` and therefore the one users already write.

use std::time::Duration;

use super::InvalidField;

/// Parses a Go `time.ParseDuration` string. Negative values are refused: no
/// certificate field accepts them.
pub fn parse_go_duration(field: &str, input: &str) -> Result<Duration, InvalidField> {
    let bad = |problem: String| {
        InvalidField::new(
            field,
            problem,
            "write a Go duration such as \"2160h\", \"1h30m\" or \"90s\" (units: ns, us, ms, s, m, h)",
        )
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(bad("the duration is empty".into()));
    }
    if s.starts_with('-') {
        return Err(bad(format!("{input:?} is negative")));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(bad(format!("{input:?} has a unit without a number")));
        }
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(bad(format!("{input:?} is missing a unit"))),
            other => return Err(bad(format!("{input:?} has unknown unit {other:?}"))),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad(format!("{input:?} has a malformed number {number:?}")));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| bad(format!("{input:?} is too large")))?
        };
        let mut value = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| bad(format!("{input:?} is too large")))?;
        let mut scale = unit_nanos;
        for digit in frac.bytes().take(18) {
            scale /= 10;
            value += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(value)
            .filter(|n| *n <= u128::from(u64::MAX))
            .ok_or_else(|| bad(format!("{input:?} is too large")))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Duration, InvalidField> {
        parse_go_duration("cert-manager.io/duration", s)
    }

    #[test]
    fn parses_go_forms() {
        assert_eq!(p("2160h").unwrap(), Duration::from_secs(2160 * 3600));
        assert_eq!(p("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(p("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(p("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(p("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(p("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_with_field_and_fix() {
        for bad in ["", "10", "h", "5d", "-1h", "1..5h", "99999999999999999999h"] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.field, "cert-manager.io/duration");
            assert!(e.fix.contains("Go duration"), "{bad}: {e}");
        }
    }
}
