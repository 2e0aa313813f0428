//! secnet's cluster model: the objects every node agrees on (nodes, networks, the CA, join
//! tokens), their validation, and the commands replicated through Raft with the pure function
//! that applies them. No I/O lives here, so every rule is tested deterministically.

pub mod error;
pub mod ids;
pub mod objects;
pub mod services;
pub mod state;

pub use error::ModelError;
pub use ids::NodeId;
pub use objects::*;
pub use services::*;
pub use state::*;
