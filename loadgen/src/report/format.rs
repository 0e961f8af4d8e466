//! Number and text formatting shared by the renderers (markdown, HTML, compare).

/// `1234567` → `1,234,567`.
pub(crate) fn int(n: u64) -> String {
    group(&n.to_string())
}

/// A float with `decimals` decimals and thousands separators; `n/a` when not finite.
pub(crate) fn num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text.as_str(), None),
    };
    let mut out = String::new();
    // `-0.0` and values that round to zero print without a sign.
    if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    out.push_str(&group(whole));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A value with as many decimals as its size deserves (3 significant digits for small
/// values, none above 100).
pub(crate) fn auto(v: f64) -> String {
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    num(v, decimals)
}

/// Milliseconds: `0.412 ms`, `12.3 ms`, `1,234 ms`.
pub(crate) fn ms(v: f64) -> String {
    format!("{} ms", auto(v))
}

/// A rate such as spans/s, without unit.
pub(crate) fn rate(v: f64) -> String {
    auto(v)
}

/// Bytes in binary units: `512.0 MiB`.
pub(crate) fn bytes(b: f64) -> String {
    if !b.is_finite() {
        return "n/a".to_owned();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", num(v, 0))
    } else {
        format!("{} {}", num(v, 1), UNITS[unit])
    }
}

/// A fraction as a percentage with enough decimals to show small values (`0.012%`).
pub(crate) fn pct(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "n/a".to_owned();
    }
    let p = fraction * 100.0;
    let a = p.abs();
    let decimals = if a == 0.0 || a >= 10.0 {
        1
    } else if a >= 0.1 {
        2
    } else {
        3
    };
    format!("{}%", num(p, decimals))
}

/// A signed change: `+12.3`, `-0.5`.
pub(crate) fn signed(v: f64) -> String {
    if v.is_finite() && v > 0.0 {
        format!("+{}", auto(v))
    } else {
        auto(v)
    }
}

/// A signed relative change as a percentage: `+12.3%`.
pub(crate) fn signed_pct(fraction: f64) -> String {
    if fraction.is_finite() && fraction > 0.0 {
        format!("+{}", pct(fraction))
    } else {
        pct(fraction)
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub(crate) fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

/// Escape text for a GitHub-flavoured markdown table cell (pipes, newlines); apply after
/// the inline escaping, which handles backslashes.
pub(crate) fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// Escape text for HTML element content and attribute values.
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn group(digits: &str) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(num(-1234.5, 1), "-1,234.5");
        assert_eq!(num(-0.0001, 2), "0.00");
        assert_eq!(ms(0.4123), "0.412 ms");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(1234.4), "1,234 ms");
        assert_eq!(bytes(512.0 * 1024.0 * 1024.0), "512.0 MiB");
        assert_eq!(pct(0.00012), "0.012%");
        assert_eq!(pct(0.5), "50.0%");
        assert_eq!(signed_pct(0.2), "+20.0%");
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(html("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
        assert_eq!(num(f64::NAN, 1), "n/a");
    }
}
