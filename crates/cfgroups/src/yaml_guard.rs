//! A guard run before YAML text reaches the parser: deeply nested flow collections make the
//! parser take time quadratic in their depth before it reaches its own recursion limit, so
//! such text is refused up front.

/// Deepest flow nesting (`[`, `{`) accepted; the parser's recursion limit is 128 as well.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Why text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nesting deeper than {MAX_FLOW_DEPTH} levels")]
pub struct TooDeep;

/// Refuses text nested deeper than [`MAX_FLOW_DEPTH`].
pub fn check_depth(text: &str) -> Result<(), TooDeep> {
    if max_flow_depth(text) > MAX_FLOW_DEPTH {
        Err(TooDeep)
    } else {
        Ok(())
    }
}

/// The deepest flow nesting in `text`, skipping quoted scalars and comments. Brackets inside
/// plain scalars (`name: Team [EU]`) may be over-counted, which only matters past the limit.
fn max_flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut previous = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_skips_quotes_and_comments() {
        assert_eq!(max_flow_depth("a: [1, {b: [2]}]"), 3);
        assert_eq!(max_flow_depth("a: \"[[[[\"\nb: '{{' # [[[[\n"), 0);
        assert_eq!(max_flow_depth("a: \"\\\"[\"\n"), 0);
        assert_eq!(max_flow_depth(&"[".repeat(200)), 200);
        assert!(check_depth(&"[".repeat(129)).is_err());
        assert!(check_depth(&"[".repeat(128)).is_ok());
    }
}
