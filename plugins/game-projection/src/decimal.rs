//! Exact decimal prices: parsed from the JSON number's text (never through
//! a float) and stored as canonical decimal text.

/// Longest accepted number text, and largest exponent magnitude.
const MAX_LEN: usize = 64;
const MAX_EXP: i64 = 40;

/// Canonical decimal text of a JSON number (or of a string holding one):
/// no exponent, no leading zeros, at least two fraction digits, no trailing
/// fraction zeros beyond two. `59.990` → `59.99`, `60` → `60.00`,
/// `5.9999E1` → `59.999`, `-0` → `0.00`.
pub fn canonical(text: &str) -> Result<String, String> {
    if let Some(fast) = plain(text) {
        return Ok(fast);
    }
    let t = text.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t);
    if t.is_empty() || t.len() > MAX_LEN {
        return Err(format!("`{text}` is not a decimal number"));
    }
    let bad = || format!("`{text}` is not a decimal number");
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => {
            let e: i64 = rest[i + 1..].parse().map_err(|_| bad())?;
            (&rest[..i], e)
        }
        None => (rest, 0),
    };
    if !(-MAX_EXP..=MAX_EXP).contains(&exp) {
        return Err(format!("`{text}` has an exponent out of range"));
    }
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if mantissa.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    // digits * 10^(exp - frac.len())
    let digits = format!("{int}{frac}");
    let scale = frac.len() as i64 - exp;
    let (int_part, frac_part) = if scale <= 0 {
        (
            format!("{digits}{}", "0".repeat((-scale) as usize)),
            String::new(),
        )
    } else {
        let scale = scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale - digits.len() + 1))
        } else {
            digits
        };
        let split = padded.len() - scale;
        (padded[..split].to_owned(), padded[split..].to_owned())
    };
    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let mut frac_part = frac_part.trim_end_matches('0').to_owned();
    while frac_part.len() < 2 {
        frac_part.push('0');
    }
    let zero = int_part == "0" && frac_part.bytes().all(|b| b == b'0');
    let sign = if negative && !zero { "-" } else { "" };
    Ok(format!("{sign}{int_part}.{frac_part}"))
}

/// The common case without allocating more than the result: a
/// non-negative number written `digits[.digits]`, no exponent, no quotes.
fn plain(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let dot = b.iter().position(|c| *c == b'.');
    let (int, frac) = match dot {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[..0]),
    };
    if int.is_empty()
        || (dot.is_some() && frac.is_empty())
        || b.len() > MAX_LEN
        || !int.iter().chain(frac).all(u8::is_ascii_digit)
    {
        return None;
    }
    let int = match int.iter().position(|c| *c != b'0') {
        Some(i) => &int[i..],
        None => &b"0"[..],
    };
    let kept = frac.iter().rposition(|c| *c != b'0').map_or(0, |i| i + 1);
    let frac = &frac[..kept];
    let mut out = String::with_capacity(int.len() + frac.len().max(2) + 1);
    out.push_str(std::str::from_utf8(int).ok()?);
    out.push('.');
    out.push_str(std::str::from_utf8(frac).ok()?);
    for _ in frac.len()..2 {
        out.push('0');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{canonical, plain};

    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        for t in [
            "59.990", "60", "0", "000.5", "10.00", "1.23456", "007", "0.0",
        ] {
            // The general path, forced by quoting the text.
            let general = canonical(&format!("\"{t}\""));
            assert_eq!(plain(t).ok_or(()), general.map_err(|_| ()), "{t}");
        }
        for t in ["12.", "-1", "1e3", ".5", "\"1\"", " 1"] {
            assert_eq!(plain(t), None, "{t}");
        }
    }

    #[test]
    fn canonical_forms() {
        for (input, expected) in [
            ("59.99", "59.99"),
            ("59.990", "59.99"),
            ("60", "60.00"),
            ("0.5", "0.50"),
            ("1.2345", "1.2345"),
            ("5.999E1", "59.99"),
            ("5999e-2", "59.99"),
            ("1e2", "100.00"),
            ("-0", "0.00"),
            ("-12.5", "-12.50"),
            ("007.10", "7.10"),
            ("\"19.99\"", "19.99"),
            ("0.1", "0.10"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
        ] {
            assert_eq!(canonical(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_non_numbers() {
        for input in [
            "", "abc", "1.", ".5", "1e", "1e999", "--1", "1.2.3", "null", "true",
        ] {
            assert!(canonical(input).is_err(), "{input}");
        }
    }
}
