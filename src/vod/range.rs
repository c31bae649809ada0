//! The Range header (RFC 9110 §14) for one representation of `size` bytes.

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) range: the whole representation, 200.
    Full,
    /// One satisfiable range, 206.
    Partial { start: u64, end_inclusive: u64 },
    /// A single range that selects nothing, 416.
    Unsatisfiable,
}

/// Evaluate a Range header. Syntax errors and unknown units are ignored (RFC 9110: a server
/// MAY ignore Range), several ranges are answered with the whole file (multipart/byteranges
/// costs a userspace copy for little use by players), and a single unsatisfiable range is 416.
pub fn evaluate_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix: the last N bytes.
        if !digits(last) {
            return RangeOutcome::Full;
        }
        let Ok(n) = last.parse::<u64>() else {
            return RangeOutcome::Full;
        };
        if n == 0 || size == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeOutcome::Partial {
            start: size - n,
            end_inclusive: size - 1,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeOutcome::Full;
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(e) => e,
            Err(_) => return RangeOutcome::Full,
        }
    };
    if end < start {
        // An invalid range-spec: the header is ignored.
        return RangeOutcome::Full;
    }
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end_inclusive: end.min(size - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        let p = |start, end_inclusive| Partial {
            start,
            end_inclusive,
        };
        assert_eq!(evaluate_range(None, 100), Full);
        assert_eq!(evaluate_range(Some("bytes=0-9"), 100), p(0, 9));
        assert_eq!(evaluate_range(Some("bytes=90-"), 100), p(90, 99));
        assert_eq!(evaluate_range(Some("bytes=-10"), 100), p(90, 99));
        assert_eq!(evaluate_range(Some("bytes=-1000"), 100), p(0, 99));
        assert_eq!(evaluate_range(Some("bytes=50-1000"), 100), p(50, 99));
        assert_eq!(evaluate_range(Some(" Bytes = 1 - 2 "), 100), p(1, 2));
        assert_eq!(evaluate_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(evaluate_range(Some("bytes=5-1"), 100), Full);
        assert_eq!(evaluate_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(evaluate_range(Some("items=0-1"), 100), Full);
        assert_eq!(evaluate_range(Some("bytes=a-b"), 100), Full);
        assert_eq!(
            evaluate_range(Some("bytes=99999999999999999999-"), 100),
            Full
        );
        assert_eq!(evaluate_range(Some("bytes"), 100), Full);
    }

    proptest! {
        #[test]
        fn partial_is_always_inside(header in any::<String>(), size in 0u64..1_000_000) {
            if let Partial { start, end_inclusive } = evaluate_range(Some(&header), size) {
                prop_assert!(start <= end_inclusive && end_inclusive < size);
            }
        }

        #[test]
        fn generated_ranges(a in 0u64..2000, b in 0u64..2000, size in 1u64..1500) {
            let h = format!("bytes={a}-{b}");
            match evaluate_range(Some(&h), size) {
                Partial { start, end_inclusive } => prop_assert!(start == a && end_inclusive == b.min(size - 1)),
                Unsatisfiable => prop_assert!(a >= size && a <= b),
                Full => prop_assert!(b < a),
            }
        }
    }
}
