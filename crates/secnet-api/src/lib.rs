//! The messages `secnet` and `secnetd` exchange and the framing every secnet socket uses.

pub mod local;
pub mod wire;

pub use local::*;
