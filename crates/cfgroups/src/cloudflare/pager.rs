//! Page accounting for list endpoints: when to stop asking for pages, and when the pages
//! do not add up to a trustworthy listing.
//!
//! A listing stops after a short page (`count < per_page`) or once the items seen reach
//! `total_count`, so a complete listing never costs a wasted trailing request. It fails
//! when an item appears twice, when `total_count` changes between pages, when the items
//! seen exceed `total_count`, or when a short page ends the listing before `total_count`
//! is reached: each of those means the collection changed under the listing or the server
//! is misbehaving, and a view that may be incomplete must never drive deletions.
//!
//! The pager sees only the ids of a page's items ([`PageItem`]), so a page can be read
//! straight into typed items.

use std::collections::HashSet;

use super::envelope::ResultInfo;
use crate::model::ObservedGroup;

/// An item of a list page, as far as page accounting needs it: its id, if it has one.
pub trait PageItem {
    fn page_id(&self) -> Option<&str>;
}

/// Groups are typed as their page is read; their id is checked by then.
impl PageItem for ObservedGroup {
    fn page_id(&self) -> Option<&str> {
        Some(self.id.as_str())
    }
}

/// Members stay opaque JSON objects (they are only carried into the journal).
impl PageItem for serde_json::Value {
    fn page_id(&self) -> Option<&str> {
        self.get("id").and_then(serde_json::Value::as_str)
    }
}

/// The largest page Cloudflare serves, and the size cfgroups asks for.
pub const PER_PAGE: u64 = 500;

/// A hard stop for runaway pagination: 10,000 pages of 500 is far beyond any account.
pub const MAX_PAGES: u64 = 10_000;

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Ask for this page next.
    Page(u64),
    /// The listing is complete.
    Done,
}

/// Tracks one listing across its pages.
#[derive(Debug)]
pub struct Pager {
    per_page: u64,
    page: u64,
    seen: HashSet<String>,
    items: u64,
    total_count: Option<u64>,
}

impl Pager {
    /// A listing that asks for `per_page` items per page, starting at page 1.
    pub fn new(per_page: u64) -> Self {
        Self {
            per_page: per_page.max(1),
            page: 1,
            seen: HashSet::new(),
            items: 0,
            total_count: None,
        }
    }

    /// The page to request now.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// The requested page size.
    pub fn per_page(&self) -> u64 {
        self.per_page
    }

    /// Takes in one page: its item ids (`None` for items without one) and its
    /// `result_info`. Returns the next step, or why the listing cannot be trusted.
    pub fn accept<'a>(
        &mut self,
        ids: impl IntoIterator<Item = Option<&'a str>>,
        info: Option<ResultInfo>,
    ) -> Result<Next, String> {
        let info = info.unwrap_or_default();
        let page = self.page;
        if let Some(reported) = info.page.filter(|reported| *reported != page) {
            return Err(format!("asked for page {page}, got page {reported}"));
        }
        let mut count = 0u64;
        for id in ids {
            count += 1;
            if let Some(id) = id
                && !self.seen.insert(id.to_owned())
            {
                return Err(format!("item {id} appears more than once"));
            }
        }
        if let Some(reported) = info.count.filter(|reported| *reported != count) {
            return Err(format!(
                "page {page} says count {reported} but holds {count} items"
            ));
        }
        // A server may serve smaller pages than asked for; it says so in `per_page`.
        let page_size = info
            .per_page
            .filter(|size| *size > 0)
            .map_or(self.per_page, |size| size.min(self.per_page));
        if count > page_size {
            return Err(format!(
                "page {page} holds {count} items, more than per_page {page_size}"
            ));
        }
        self.items += count;
        if let Some(total) = info.total_count {
            if let Some(previous) = self.total_count.filter(|previous| *previous != total) {
                return Err(format!(
                    "total_count changed from {previous} to {total} between pages"
                ));
            }
            self.total_count = Some(total);
        }
        match self.total_count {
            Some(total) if self.items > total => Err(format!(
                "{} items seen but total_count is {total}",
                self.items
            )),
            Some(total) if self.items == total => Ok(Next::Done),
            Some(total) if count < page_size => Err(format!(
                "page {page} is short ({count} of {page_size}) but only {} of total_count \
                 {total} items were seen",
                self.items
            )),
            None if count < page_size => Ok(Next::Done),
            _ if page >= MAX_PAGES => Err(format!("more than {MAX_PAGES} pages")),
            _ => {
                self.page += 1;
                Ok(Next::Page(self.page))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(page: u64, count: u64, total: u64) -> Option<ResultInfo> {
        Some(ResultInfo {
            page: Some(page),
            per_page: Some(2),
            count: Some(count),
            total_count: Some(total),
        })
    }

    #[test]
    fn stops_when_total_is_reached_even_on_a_full_page() {
        let mut pager = Pager::new(2);
        assert_eq!(
            pager.accept([Some("a"), Some("b")], info(1, 2, 4)),
            Ok(Next::Page(2))
        );
        assert_eq!(
            pager.accept([Some("c"), Some("d")], info(2, 2, 4)),
            Ok(Next::Done)
        );
    }

    #[test]
    fn stops_on_a_short_page() {
        let mut pager = Pager::new(2);
        assert_eq!(
            pager.accept([Some("a"), Some("b")], info(1, 2, 3)),
            Ok(Next::Page(2))
        );
        assert_eq!(pager.accept([Some("c")], info(2, 1, 3)), Ok(Next::Done));
        let mut empty = Pager::new(2);
        assert_eq!(empty.accept([], info(1, 0, 0)), Ok(Next::Done));
        let mut bare = Pager::new(2);
        assert_eq!(bare.accept([Some("a")], None), Ok(Next::Done));
    }

    #[test]
    fn refuses_listings_that_do_not_add_up() {
        let mut fewer = Pager::new(2);
        fewer.accept([Some("a"), Some("b")], info(1, 2, 5)).unwrap();
        assert!(fewer.accept([Some("c")], info(2, 1, 5)).is_err());

        let mut more = Pager::new(2);
        assert!(more.accept([Some("a"), Some("b")], info(1, 2, 1)).is_err());

        let mut changed = Pager::new(2);
        changed
            .accept([Some("a"), Some("b")], info(1, 2, 5))
            .unwrap();
        assert!(
            changed
                .accept([Some("c"), Some("d")], info(2, 2, 6))
                .is_err()
        );

        let mut twice = Pager::new(2);
        twice.accept([Some("a"), Some("b")], info(1, 2, 4)).unwrap();
        let err = twice
            .accept([Some("b"), Some("c")], info(2, 2, 4))
            .unwrap_err();
        assert!(err.contains("more than once"), "{err}");

        let mut wrong_page = Pager::new(2);
        wrong_page
            .accept([Some("a"), Some("b")], info(1, 2, 4))
            .unwrap();
        assert!(
            wrong_page
                .accept([Some("c"), Some("d")], info(1, 2, 4))
                .is_err()
        );

        let mut miscounted = Pager::new(2);
        assert!(miscounted.accept([Some("a")], info(1, 2, 2)).is_err());
    }

    #[test]
    fn smaller_server_pages_are_followed() {
        let mut pager = Pager::new(500);
        let small = |page, total| {
            Some(ResultInfo {
                page: Some(page),
                per_page: Some(1),
                count: Some(1),
                total_count: Some(total),
            })
        };
        assert_eq!(pager.accept([Some("a")], small(1, 2)), Ok(Next::Page(2)));
        assert_eq!(pager.accept([Some("b")], small(2, 2)), Ok(Next::Done));
    }
}
