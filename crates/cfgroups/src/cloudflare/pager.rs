//! Page accounting for list endpoints: which pages to ask for, and when the pages do not add
//! up to a trustworthy listing.
//!
//! Page 1 says how many items there are (`total_count`) and how many a page holds
//! (`per_page`): every other page is then known, and they may be fetched at once, in any
//! order. Each page must hold exactly the items its place implies (a full page, or the rest
//! on the last one), report the same `total_count`, and repeat no item; together they must
//! hold exactly `total_count` items. When page 1 gives no `total_count`, pages are asked for
//! one after another until a short one. A complete listing never costs a wasted request.
//! Anything that does not add up means the collection changed under the listing or the
//! server misbehaved, and a view that may be incomplete must never drive deletions.
//!
//! The pager sees only the ids of a page's items ([`PageItem`]), so a page can be read
//! straight into typed items.

use std::collections::{BTreeSet, HashSet};
use std::ops::RangeInclusive;

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

/// How many times a listing that does not parse or does not add up is asked for again
/// before it fails: a lying page is rare, and the next answer is usually sound.
pub const MAX_RELISTS: u32 = 3;

/// A hard stop for runaway pagination: 10,000 pages of 500 is far beyond any account.
pub const MAX_PAGES: u64 = 10_000;

/// What to do after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask for this page next (the size of the listing is not known).
    Page(u64),
    /// Ask for all of these pages, in any order, then [`Pager::finish`].
    Pages(RangeInclusive<u64>),
    /// Pages already named are still to come.
    Pending,
    /// The listing is complete.
    Done,
}

/// How the pages after the first are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Page 1 not seen yet.
    Start,
    /// No `total_count`: one page after another.
    Sequential { page: u64 },
    /// `total_count` and the page size are known: every page is.
    Known {
        total: u64,
        page_size: u64,
        pages: u64,
    },
}

/// Tracks one listing across its pages.
#[derive(Debug)]
pub struct Pager {
    per_page: u64,
    mode: Mode,
    seen: HashSet<String>,
    pages_seen: BTreeSet<u64>,
    items: u64,
    total_count: Option<u64>,
}

impl Pager {
    /// A listing that asks for `per_page` items per page, starting at page 1.
    pub fn new(per_page: u64) -> Self {
        Self {
            per_page: per_page.max(1),
            mode: Mode::Start,
            seen: HashSet::new(),
            pages_seen: BTreeSet::new(),
            items: 0,
            total_count: None,
        }
    }

    /// The requested page size.
    pub fn per_page(&self) -> u64 {
        self.per_page
    }

    /// Takes in page `page`: its item ids (`None` for items without one) and its
    /// `result_info`. Returns the next step, or why the listing cannot be trusted.
    pub fn accept<'a>(
        &mut self,
        page: u64,
        ids: impl IntoIterator<Item = Option<&'a str>>,
        info: Option<ResultInfo>,
    ) -> Result<Next, String> {
        let info = info.unwrap_or_default();
        if let Some(reported) = info.page.filter(|reported| *reported != page) {
            return Err(format!("asked for page {page}, got page {reported}"));
        }
        if !self.pages_seen.insert(page) {
            return Err(format!("page {page} was answered twice"));
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
        if let Some(total) = self.total_count.filter(|total| self.items > *total) {
            return Err(format!(
                "{} items seen but total_count is {total}",
                self.items
            ));
        }
        match self.mode {
            Mode::Start | Mode::Sequential { .. } => self.after_in_order(page, count, page_size),
            Mode::Known {
                total,
                page_size: size,
                pages,
            } => {
                let expected = if page < pages {
                    size
                } else {
                    total - (pages - 1) * size
                };
                if page > pages || count != expected {
                    return Err(format!(
                        "page {page} holds {count} items where total_count {total} in pages \
                         of {size} means {expected}"
                    ));
                }
                Ok(if self.pages_seen.len() as u64 == pages {
                    Next::Done
                } else {
                    Next::Pending
                })
            }
        }
    }

    /// The next step after page `page`, taken in order, held `count` items of `page_size`.
    fn after_in_order(&mut self, page: u64, count: u64, page_size: u64) -> Result<Next, String> {
        match self.total_count {
            Some(total) if self.items == total => Ok(Next::Done),
            Some(total) if count < page_size => Err(format!(
                "page {page} is short ({count} of {page_size}) but only {} of total_count \
                 {total} items were seen",
                self.items
            )),
            Some(total) if page == 1 => {
                let pages = total.div_ceil(page_size);
                if pages > MAX_PAGES {
                    return Err(format!("more than {MAX_PAGES} pages"));
                }
                self.mode = Mode::Known {
                    total,
                    page_size,
                    pages,
                };
                Ok(Next::Pages(2..=pages))
            }
            None if count < page_size => Ok(Next::Done),
            _ if page >= MAX_PAGES => Err(format!("more than {MAX_PAGES} pages")),
            _ => {
                self.mode = Mode::Sequential { page: page + 1 };
                Ok(Next::Page(page + 1))
            }
        }
    }

    /// Checks, once every page asked for is in, that they add up to `total_count`.
    pub fn finish(&self) -> Result<(), String> {
        match self.mode {
            Mode::Known { total, pages, .. } => {
                let missing = (1..=pages).find(|page| !self.pages_seen.contains(page));
                match missing {
                    Some(page) => Err(format!("page {page} of {pages} never came")),
                    None if self.items != total => Err(format!(
                        "{} items seen but total_count is {total}",
                        self.items
                    )),
                    None => Ok(()),
                }
            }
            Mode::Start => Err("no page was read".to_owned()),
            Mode::Sequential { .. } => Ok(()),
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
    fn page_one_names_every_other_page() {
        let mut pager = Pager::new(2);
        assert_eq!(
            pager.accept(1, [Some("a"), Some("b")], info(1, 2, 5)),
            Ok(Next::Pages(2..=3))
        );
        // Any order.
        assert_eq!(
            pager.accept(3, [Some("e")], info(3, 1, 5)),
            Ok(Next::Pending)
        );
        assert_eq!(
            pager.accept(2, [Some("c"), Some("d")], info(2, 2, 5)),
            Ok(Next::Done)
        );
        assert_eq!(pager.finish(), Ok(()));
    }

    #[test]
    fn stops_when_total_is_reached_on_page_one() {
        let mut pager = Pager::new(2);
        assert_eq!(
            pager.accept(1, [Some("a"), Some("b")], info(1, 2, 2)),
            Ok(Next::Done)
        );
        let mut empty = Pager::new(2);
        assert_eq!(empty.accept(1, [], info(1, 0, 0)), Ok(Next::Done));
    }

    #[test]
    fn without_total_count_pages_come_one_after_another() {
        let bare = |page, count| {
            Some(ResultInfo {
                page: Some(page),
                per_page: Some(2),
                count: Some(count),
                total_count: None,
            })
        };
        let mut pager = Pager::new(2);
        assert_eq!(
            pager.accept(1, [Some("a"), Some("b")], bare(1, 2)),
            Ok(Next::Page(2))
        );
        assert_eq!(pager.accept(2, [Some("c")], bare(2, 1)), Ok(Next::Done));
        assert_eq!(pager.finish(), Ok(()));
        let mut none = Pager::new(2);
        assert_eq!(none.accept(1, [Some("a")], None), Ok(Next::Done));
    }

    #[test]
    fn refuses_listings_that_do_not_add_up() {
        // A short page 1 below total_count.
        assert!(Pager::new(2).accept(1, [Some("a")], info(1, 1, 3)).is_err());
        // More items than total_count.
        assert!(
            Pager::new(2)
                .accept(1, [Some("a"), Some("b")], info(1, 2, 1))
                .is_err()
        );
        // A page that drops an item: its count is what it holds, but not what it must hold.
        let mut dropped = Pager::new(2);
        dropped
            .accept(1, [Some("a"), Some("b")], info(1, 2, 5))
            .unwrap();
        let err = dropped.accept(2, [Some("c")], info(2, 1, 5)).unwrap_err();
        assert!(err.contains("means 2"), "{err}");
        // total_count changes between pages.
        let mut changed = Pager::new(2);
        changed
            .accept(1, [Some("a"), Some("b")], info(1, 2, 5))
            .unwrap();
        assert!(
            changed
                .accept(2, [Some("c"), Some("d")], info(2, 2, 6))
                .is_err()
        );
        // An item on two pages.
        let mut twice = Pager::new(2);
        twice
            .accept(1, [Some("a"), Some("b")], info(1, 2, 4))
            .unwrap();
        let err = twice
            .accept(2, [Some("b"), Some("c")], info(2, 2, 4))
            .unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        // The wrong page, or the same page twice.
        let mut wrong = Pager::new(2);
        wrong
            .accept(1, [Some("a"), Some("b")], info(1, 2, 4))
            .unwrap();
        assert!(
            wrong
                .accept(2, [Some("c"), Some("d")], info(1, 2, 4))
                .is_err()
        );
        let mut again = Pager::new(2);
        again
            .accept(1, [Some("a"), Some("b")], info(1, 2, 4))
            .unwrap();
        assert!(
            again
                .accept(1, [Some("c"), Some("d")], info(1, 2, 4))
                .is_err()
        );
        // A miscounted page.
        assert!(Pager::new(2).accept(1, [Some("a")], info(1, 2, 2)).is_err());
        // A missing page at the end.
        let mut missing = Pager::new(2);
        missing
            .accept(1, [Some("a"), Some("b")], info(1, 2, 5))
            .unwrap();
        missing.accept(3, [Some("e")], info(3, 1, 5)).unwrap();
        assert!(missing.finish().unwrap_err().contains("page 2"));
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
        assert_eq!(
            pager.accept(1, [Some("a")], small(1, 2)),
            Ok(Next::Pages(2..=2))
        );
        assert_eq!(pager.accept(2, [Some("b")], small(2, 2)), Ok(Next::Done));
    }
}
