//! Keyset pagination. A cursor is the UUID v7 of the last item a client saw, so pages are
//! stable under concurrent inserts and cost one index range scan.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::{FieldError, ValidationErrors};

/// Position after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor(pub Uuid);

impl Cursor {
    /// What a cursor looks like on the wire: a UUID, simple (as issued) or hyphenated.
    pub const PATTERN: &'static str = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$";

    /// The opaque string a client sends back.
    pub fn encode(&self) -> String {
        self.0.simple().to_string()
    }

    /// Parses a cursor a client sent; `field` names it in the error.
    pub fn decode(raw: &str, field: &str) -> Result<Self, ValidationErrors> {
        Uuid::try_parse(raw).map(Cursor).map_err(|_| {
            ValidationErrors::single(FieldError::new(
                field,
                "cursor",
                "is not a cursor this API issued",
            ))
        })
    }
}

/// A request for one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// Maximum number of items, between 1 and [`PageRequest::MAX_LIMIT`].
    pub limit: u32,
    /// Where to continue, `None` for the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Default page size when the client gives none.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page a client may ask for.
    pub const MAX_LIMIT: u32 = 200;

    /// Builds a page request from raw query parameters, refusing out-of-range limits.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ValidationErrors> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(ValidationErrors::single(FieldError::new(
                "limit",
                "range",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            )));
        }
        let after = cursor.map(|c| Cursor::decode(c, "cursor")).transpose()?;
        Ok(Self { limit, after })
    }

    /// The first page of the default size.
    pub fn first() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of results and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's stable order.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` when this is the last one.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only proves a next page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Uuid) -> Self {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor(key(last)))
        } else {
            None
        };
        Self { items: rows, next }
    }

    /// Converts the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_sets_cursor_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_overfetch(ids.clone(), 2, |u| *u);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next, Some(Cursor(ids[1])));
        let last = Page::from_overfetch(ids.clone(), 3, |u| *u);
        assert_eq!(last.next, None);
    }

    #[test]
    fn limits_outside_range_are_refused() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(201), None).is_err());
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        let err = PageRequest::parse(None, Some("zzz")).unwrap_err();
        assert_eq!(err.errors[0].field, "cursor");
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&c.encode(), "cursor").unwrap(), c);
    }
}
