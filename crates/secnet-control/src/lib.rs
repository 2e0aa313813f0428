//! secnet's control plane: the Raft group of managers (openraft on a redb store), the mTLS
//! control protocol between nodes, and the daemon that runs a node's membership.

pub mod agent;
pub mod daemon;
pub mod peer;
pub mod raft;
pub mod raft_net;
