//! Canopy kernel: identifiers, the clock port, pagination, validation errors, the storage
//! failure every port may return, plan refusals, and the cooperative stop signal long work
//! checks.
//!
//! Architecture invariant: this crate performs no IO and depends on nothing but
//! serde, uuid, chrono and thiserror. Every other crate may depend on it.

pub mod clock;
pub mod error;
pub mod id;
pub mod limit;
pub mod page;
pub mod stop;
pub mod text;
pub mod validation;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use limit::{FeatureNotInPlan, LimitedResource, PlanLimitExceeded};
pub use page::{Cursor, Page, PageRequest};
pub use stop::Stop;
pub use text::bounded_text;
pub use validation::{FieldError, ValidationErrors};
