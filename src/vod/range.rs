//! The `Range` header for a representation of known size (RFC 9110 §14).

/// What a `Range` header asks of a representation of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send everything with 200: no header, a header we ignore (unknown unit, bad syntax),
    /// or several ranges. Multipart/byteranges is deliberately not implemented: players
    /// ask for one range at a time, and RFC 9110 §14.2 lets a server ignore Range.
    Full,
    /// Send `start..=end_inclusive` with 206. Always `start <= end_inclusive < size`.
    Partial { start: u64, end_inclusive: u64 },
    /// Answer 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Evaluates a single `bytes` range against `size`.
///
/// - `bytes=a-b`: `b` is clamped to `size - 1`; `a > b` or `a >= size` is unsatisfiable.
/// - `bytes=a-`: from `a` to the end.
/// - `bytes=-n`: the last `n` bytes (all of them if `n > size`); `-0` is unsatisfiable.
/// - Any valid range against an empty representation is unsatisfiable.
/// - The unit is case-insensitive; whitespace around the parts is tolerated.
pub fn evaluate_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(single_range_spec) else {
        return RangeOutcome::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim_matches(is_ows), last.trim_matches(is_ows));
    let bound = |digits: &str| -> Option<Option<u64>> {
        if digits.is_empty() {
            Some(None)
        } else if digits.bytes().all(|b| b.is_ascii_digit()) {
            // All digits but too big for u64: larger than any file, so saturate.
            Some(Some(digits.parse().unwrap_or(u64::MAX)))
        } else {
            None
        }
    };
    let (Some(first), Some(last)) = (bound(first), bound(last)) else {
        return RangeOutcome::Full;
    };
    match (first, last) {
        (None, None) => RangeOutcome::Full,
        (None, Some(suffix_len)) => {
            if suffix_len == 0 || size == 0 {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start: size - suffix_len.min(size),
                    end_inclusive: size - 1,
                }
            }
        }
        (Some(start), last) => {
            if last.is_some_and(|last| start > last) || start >= size {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start,
                    end_inclusive: last.map_or(size - 1, |last| last.min(size - 1)),
                }
            }
        }
    }
}

/// The one range-spec of a `bytes=` header, or None if the header is not a bytes range
/// or has more than one range (or none).
fn single_range_spec(header: &str) -> Option<&str> {
    let (unit, set) = header.trim_matches(is_ows).split_once('=')?;
    if !unit.trim_matches(is_ows).eq_ignore_ascii_case("bytes") {
        return None;
    }
    // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches(is_ows))
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    Some(spec)
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eval(header: &str, size: u64) -> RangeOutcome {
        evaluate_range(Some(header), size)
    }

    fn part(start: u64, end_inclusive: u64) -> RangeOutcome {
        RangeOutcome::Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate_range(None, 100), RangeOutcome::Full);
        assert_eq!(eval("bytes=0-99", 100), part(0, 99));
        assert_eq!(eval("bytes=0-0", 100), part(0, 0));
        assert_eq!(eval("bytes=10-19", 100), part(10, 19));
        assert_eq!(eval("bytes=90-1000", 100), part(90, 99));
        assert_eq!(eval("bytes=90-99999999999999999999999", 100), part(90, 99));
        assert_eq!(eval("bytes=50-", 100), part(50, 99));
        assert_eq!(eval("bytes=99-", 100), part(99, 99));
        assert_eq!(eval("bytes=-10", 100), part(90, 99));
        assert_eq!(eval("bytes=-100", 100), part(0, 99));
        assert_eq!(eval("bytes=-1000", 100), part(0, 99));
        assert_eq!(eval("bytes=-99999999999999999999999", 100), part(0, 99));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(eval("bytes=100-", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(eval("bytes=100-200", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(eval("bytes=20-10", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(eval("bytes=-0", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(
            eval("bytes=99999999999999999999999-", 100),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(eval("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(eval("bytes=-5", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(eval("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn ignored_headers_mean_full() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=0x10-",
            "bytes=+1-2",
            "bytes=1 0-20",
            "items=0-10",
            "bytesx=0-10",
            "0-10",
            "bytes=0-10,20-30",
            "bytes=0-10, 5-",
            "bytes=,",
        ] {
            assert_eq!(eval(header, 100), RangeOutcome::Full, "{header:?}");
            assert_eq!(eval(header, 0), RangeOutcome::Full, "{header:?}");
        }
    }

    #[test]
    fn whitespace_and_case_are_tolerated() {
        assert_eq!(eval(" BYTES = 1 - 2 ", 100), part(1, 2));
        assert_eq!(eval("Bytes=\t-5\t", 100), part(95, 99));
        assert_eq!(eval("bytes=, 3-4 ,", 100), part(3, 4));
    }

    fn check(header: &str, size: u64) -> Result<(), TestCaseError> {
        if let RangeOutcome::Partial {
            start,
            end_inclusive,
        } = evaluate_range(Some(header), size)
        {
            prop_assert!(start <= end_inclusive, "{header:?} {size}");
            prop_assert!(end_inclusive < size, "{header:?} {size}");
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn partial_ranges_are_always_inside(header in any::<String>(), size in any::<u64>()) {
            check(&header, size)?;
        }

        #[test]
        fn range_shaped_headers_are_always_inside(
            header in "[bB][yY][tT][eE][sS] ?= ?[0-9]{0,21} ?- ?[0-9]{0,21}( ?,)?",
            size in prop_oneof![0u64..4, 0u64..1000, Just(u64::MAX), any::<u64>()],
        ) {
            check(&header, size)?;
        }

        #[test]
        fn explicit_ranges_match_a_model(start in 0u64..200, end in 0u64..200, size in 0u64..150) {
            let expected = if size == 0 || start > end || start >= size {
                RangeOutcome::Unsatisfiable
            } else {
                part(start, end.min(size - 1))
            };
            prop_assert_eq!(eval(&format!("bytes={start}-{end}"), size), expected);
        }
    }
}
