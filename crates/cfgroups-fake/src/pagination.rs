//! Query strings and pagination: `page`/`per_page` with the API's bounds, `direction`, and
//! slicing a listing into one page with its `result_info`.

use crate::envelope::{ApiError, ResultInfo};

/// `per_page` when the request gives none.
pub const DEFAULT_PER_PAGE: u64 = 100;
/// The largest `per_page` the API accepts; more is a 400.
pub const MAX_PER_PAGE: u64 = 500;

/// A parsed query string; the first occurrence of a key wins.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        serde_urlencoded::from_str(raw)
            .map(Self)
            .map_err(|e| ApiError::invalid_input(format!("invalid query string: {e}")))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Which page of how many items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) page: u64,
    pub(crate) per_page: u64,
}

impl PageRequest {
    /// `page` (default 1, min 1) and `per_page` (default 100, 1..=500); anything else is a 400.
    pub(crate) fn from_query(query: &Query) -> Result<Self, ApiError> {
        let page = bounded(query, "page", 1, 1, u64::MAX)?;
        let per_page = bounded(query, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)?;
        Ok(Self { page, per_page })
    }

    /// The items of this page and the `result_info` describing it. A page past the end is
    /// empty and still reports the true `total_count`.
    pub(crate) fn slice<T: Clone>(&self, items: &[T]) -> (Vec<T>, ResultInfo) {
        let total = items.len();
        let start = usize::try_from((self.page - 1).saturating_mul(self.per_page))
            .unwrap_or(usize::MAX)
            .min(total);
        let len = usize::try_from(self.per_page).unwrap_or(usize::MAX);
        let end = start.saturating_add(len).min(total);
        let page = items[start..end].to_vec();
        let info = ResultInfo {
            page: self.page,
            per_page: self.per_page,
            count: page.len() as u64,
            total_count: total as u64,
        };
        (page, info)
    }
}

fn bounded(query: &Query, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    let Some(raw) = query.get(key) else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ if max == u64::MAX => Err(ApiError::invalid_input(format!(
            "{key} must be an integer of at least {min}, got {raw:?}"
        ))),
        _ => Err(ApiError::invalid_input(format!(
            "{key} must be an integer between {min} and {max}, got {raw:?}"
        ))),
    }
}

/// The sort a listing asks for with `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// No `direction`: creation order.
    Unsorted,
    Asc,
    Desc,
}

impl Direction {
    pub(crate) fn from_query(query: &Query) -> Result<Self, ApiError> {
        match query.get("direction") {
            None => Ok(Self::Unsorted),
            Some("asc") => Ok(Self::Asc),
            Some("desc") => Ok(Self::Desc),
            Some(other) => Err(ApiError::invalid_input(format!(
                "direction must be asc or desc, got {other:?}"
            ))),
        }
    }

    /// Sorts by `key` (ties broken by `tie`, so pages are stable) unless unsorted.
    pub(crate) fn sort<T>(self, items: &mut [T], key: impl Fn(&T) -> (&str, &str)) {
        match self {
            Self::Unsorted => {}
            Self::Asc => items.sort_by(|a, b| key(a).cmp(&key(b))),
            Self::Desc => items.sort_by(|a, b| key(b).cmp(&key(a))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Result<PageRequest, ApiError> {
        PageRequest::from_query(&Query::parse(Some(raw)).unwrap())
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            request("").unwrap(),
            PageRequest {
                page: 1,
                per_page: 100
            }
        );
        assert!(request("per_page=500").is_ok());
        for bad in [
            "per_page=501",
            "per_page=0",
            "page=0",
            "page=x",
            "per_page=-1",
        ] {
            assert!(request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slices_and_reports_past_the_end() {
        let items: Vec<u32> = (0..7).collect();
        let (page, info) = request("page=2&per_page=5").unwrap().slice(&items);
        assert_eq!(page, vec![5, 6]);
        assert_eq!((info.count, info.total_count), (2, 7));
        let (page, info) = request("page=9&per_page=5").unwrap().slice(&items);
        assert!(page.is_empty());
        assert_eq!((info.page, info.count, info.total_count), (9, 0, 7));
        let (page, _) = request(&format!("page={}&per_page=500", u64::MAX))
            .unwrap()
            .slice(&items);
        assert!(page.is_empty());
    }
}
