//! What a node keeps about itself: who it is in which cluster, its certificate and the
//! addresses it uses. The private key is sealed under the node's key-encryption key; nothing
//! secret is written in clear.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use secnet_keys::seal::{self, Kek};
use secnet_keys::secret::SecretBytes;
use secnet_model::{NodeId, Role};

use crate::peer::PeerRef;

/// A node's persisted membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub hostname: String,
    pub listen_addr: SocketAddr,
    pub advertise_addr: SocketAddr,
    pub data_path_addr: IpAddr,
    #[serde(with = "hex_bytes")]
    pub ca_der: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub cert_der: Vec<u8>,
    /// Managers known at join time, trusted for Raft traffic before this node's copy of the
    /// state names them.
    pub bootstrap_managers: Vec<PeerRef>,
    /// The role this node last ran as.
    pub role: Role,
}

const IDENTITY_FILE: &str = "identity.json";
const KEY_FILE: &str = "node-key.sealed";
const KEY_AAD: &[u8] = b"secnet node tls key v1";

/// Where a daemon keeps its files.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    pub fn new(dir: &Path) -> Self {
        StatePaths {
            dir: dir.to_path_buf(),
        }
    }
    pub fn identity(&self) -> PathBuf {
        self.dir.join(IDENTITY_FILE)
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
    pub fn kek(&self) -> PathBuf {
        self.dir.join("kek")
    }
    pub fn raft_db(&self) -> PathBuf {
        self.dir.join("raft.redb")
    }
    pub fn worker_cache(&self) -> PathBuf {
        self.dir.join("worker-state.sealed")
    }
}

/// Writes the identity and the sealed key (each atomically, mode 0600).
pub fn save(
    paths: &StatePaths,
    kek: &Kek,
    id: &Identity,
    key: &SecretBytes,
) -> std::io::Result<()> {
    let sealed = seal::seal(kek, key.expose(), KEY_AAD);
    seal::write_private_file(&paths.key(), &sealed).map_err(std::io::Error::other)?;
    let json = serde_json::to_vec_pretty(id).map_err(std::io::Error::other)?;
    seal::write_private_file(&paths.identity(), &json).map_err(std::io::Error::other)?;
    Ok(())
}

/// Loads the identity if this node is in a cluster.
pub fn load(paths: &StatePaths, kek: &Kek) -> std::io::Result<Option<(Identity, SecretBytes)>> {
    let json = match std::fs::read(paths.identity()) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let id: Identity = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    let sealed = std::fs::read(paths.key())?;
    let key = seal::open(kek, &sealed, KEY_AAD).map_err(std::io::Error::other)?;
    Ok(Some((id, key)))
}

/// Forgets the membership (leave): identity, key, Raft data and caches.
pub fn wipe(paths: &StatePaths) -> std::io::Result<()> {
    for p in [
        paths.identity(),
        paths.key(),
        paths.raft_db(),
        paths.worker_cache(),
        paths.dir.join("wireguard-key.sealed"),
    ] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Certificates as hex strings in `identity.json` (readable, and `xxd -r -p` turns them back
/// into DER).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
