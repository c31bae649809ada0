//! On-demand file semantics.
