//! On-demand file semantics: path checks, opening beneath the media root, validators,
//! conditionals, Range, content types and the per-worker open-file cache.

pub mod cache;
pub mod meta;
pub mod mime;
pub mod path;
pub mod plan;
pub mod range;

pub use cache::FileCache;
pub use meta::FileMeta;
pub use mime::content_type;
pub use path::{PathError, SymlinkPolicy, normalise_vod_path, open_beneath, open_root};
pub use plan::{VodPlan, plan};
pub use range::{RangeOutcome, evaluate_range};
