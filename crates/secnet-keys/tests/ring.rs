//! Properties of the pre-shared-key ring over random operation sequences:
//! the ring's invariants hold after every step, and each operation does
//! exactly what its rule says (checked against the ring before the step).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use secnet_keys::ring::{KeyRing, KeyState, RingError, RotationReason, MAX_RING_KEYS};
use secnet_keys::Secret32;

/// Node ids are drawn from `0..NODES`, so acks, removals and live sets
/// overlap often.
const NODES: u64 = 6;

#[derive(Debug, Clone)]
enum Op {
    Begin {
        reason: RotationReason,
        secret: [u8; 32],
    },
    /// Acknowledges epoch `last_epoch + 1 - back` (so unknown epochs, above
    /// and below the ring, come up too).
    Ack {
        node: u64,
        back: u64,
    },
    Promote {
        live: BTreeSet<u64>,
    },
    Retire {
        keep: usize,
    },
    Forget {
        node: u64,
    },
}

fn reason() -> impl Strategy<Value = RotationReason> {
    prop_oneof![
        Just(RotationReason::Scheduled),
        Just(RotationReason::Manual),
        (0..NODES).prop_map(RotationReason::NodeRemoved),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (reason(), any::<[u8; 32]>()).prop_map(|(reason, secret)| Op::Begin { reason, secret }),
        5 => (0..NODES, 0u64..6).prop_map(|(node, back)| Op::Ack { node, back }),
        3 => proptest::collection::btree_set(0..NODES, 0..=NODES as usize)
            .prop_map(|live| Op::Promote { live }),
        1 => (0usize..5).prop_map(|keep| Op::Retire { keep }),
        1 => (0..NODES).prop_map(|node| Op::Forget { node }),
    ]
}

/// What the test remembers across steps, independently of the ring.
#[derive(Default)]
struct History {
    /// Every epoch a node ever acknowledged, including dropped keys.
    acked: BTreeMap<u64, BTreeSet<u64>>,
    /// The highest epoch ever issued.
    max_issued: u64,
    /// The hex of every secret ever handed to the ring.
    secrets: Vec<String>,
}

fn check_invariants(ring: &KeyRing) {
    let keys: Vec<_> = ring.keys().collect();
    assert!(!keys.is_empty() && keys.len() <= MAX_RING_KEYS, "{ring:?}");
    assert!(
        keys.windows(2).all(|w| w[0].epoch < w[1].epoch),
        "epochs must strictly increase: {ring:?}"
    );
    assert!(ring.last_epoch() >= keys[keys.len() - 1].epoch);
    let tags: std::collections::BTreeSet<u64> = keys
        .iter()
        .map(|k| secnet_keys::ring::epoch_tag(k.epoch))
        .collect();
    assert_eq!(tags.len(), keys.len(), "epoch tags must differ: {ring:?}");
    let primaries: Vec<_> = keys
        .iter()
        .filter(|k| k.state == KeyState::Primary)
        .collect();
    assert_eq!(primaries.len(), 1, "exactly one primary: {ring:?}");
    let primary = ring.primary();
    assert_eq!(primary.state, KeyState::Primary);
    assert_eq!(primaries[0].epoch, primary.epoch);
    assert!(primary.promoted_at.is_some());
    let pendings: Vec<_> = keys
        .iter()
        .filter(|k| k.state == KeyState::Pending)
        .collect();
    assert!(pendings.len() <= 1, "at most one pending: {ring:?}");
    match ring.pending() {
        Some(p) => {
            assert_eq!(pendings.len(), 1);
            assert_eq!(p.state, KeyState::Pending);
            assert_eq!(p.promoted_at, None);
            assert_eq!(p.epoch, keys[keys.len() - 1].epoch, "pending is newest");
        }
        None => assert!(pendings.is_empty()),
    }
    for k in &keys {
        if k.state == KeyState::Retiring {
            assert!(k.epoch < primary.epoch, "retiring older than primary");
        }
        assert_eq!(ring.get(k.epoch).map(|g| g.epoch), Some(k.epoch));
    }
    assert!(ring
        .retiring()
        .iter()
        .all(|k| k.state == KeyState::Retiring));
    assert_eq!(
        ring.retiring().len() + 1 + usize::from(ring.pending().is_some()),
        keys.len()
    );
    for e in 0..=ring.last_epoch().saturating_add(1) {
        if ring.get(e).is_none() {
            assert!(ring.acks(e).is_empty(), "acks for dropped epoch {e}");
        }
    }
}

fn check_debug_and_serde(ring: &KeyRing, history: &History) {
    let dbg = format!("{ring:?}\n{ring:#?}");
    for hex in &history.secrets {
        assert!(!dbg.contains(hex.as_str()), "secret in Debug: {dbg}");
    }
    let json = serde_json::to_string(ring).expect("serialize");
    for k in ring.keys() {
        assert!(json.contains(k.secret.to_hex().as_str()));
    }
    let back: KeyRing = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, ring);
    assert_eq!(serde_json::to_string(&back).expect("serialize"), json);
}

fn apply(ring: &mut KeyRing, history: &mut History, op: &Op, now: u64) {
    let before = ring.clone();
    let before_len = before.keys().count();
    match op {
        Op::Begin { reason, secret } => {
            let secret = Secret32::new(*secret);
            history.secrets.push(secret.to_hex().to_string());
            let res = ring.begin_rotation(secret.clone(), now, *reason);
            let removal = matches!(reason, RotationReason::NodeRemoved(_));
            match (before.pending(), removal) {
                (Some(p), false) => {
                    assert_eq!(
                        res,
                        Err(RingError::RotationInProgress {
                            epoch: p.epoch,
                            acked: before.acks(p.epoch).len()
                        })
                    );
                    assert_eq!(ring, &before, "a refused rotation changes nothing");
                }
                (old_pending, _) => {
                    let e = res.expect("rotation starts");
                    assert_eq!(e, before.last_epoch() + 1);
                    assert!(e > history.max_issued);
                    history.max_issued = e;
                    let p = ring.pending().expect("pending");
                    assert_eq!((p.epoch, p.created_at), (e, now));
                    assert!(p.secret.ct_eq(&secret));
                    assert!(ring.acks(e).is_empty());
                    assert_eq!(ring.primary(), before.primary(), "primary untouched");
                    if let Some(old) = old_pending {
                        assert!(ring.get(old.epoch).is_none(), "superseded key dropped");
                    }
                    if let RotationReason::NodeRemoved(node) = reason {
                        // Fresh: above anything the removed node acked.
                        if let Some(max) = history.acked.get(node).and_then(|s| s.last()) {
                            assert!(e > *max);
                        }
                        assert!(ring.keys().all(|k| !ring.acks(k.epoch).contains(node)));
                    }
                    let base = before_len - usize::from(old_pending.is_some());
                    assert_eq!(ring.keys().count(), (base + 1).min(MAX_RING_KEYS));
                    // Only the oldest retiring keys were dropped.
                    let kept = ring.retiring();
                    let was = before.retiring();
                    assert_eq!(kept, &was[was.len() - kept.len()..]);
                }
            }
        }
        Op::Ack { node, back } => {
            let epoch = (before.last_epoch() + 1).saturating_sub(*back);
            let res = ring.acknowledge(*node, epoch);
            if before.get(epoch).is_some() {
                assert_eq!(res, Ok(!before.acks(epoch).contains(node)));
                assert!(ring.acks(epoch).contains(node));
                history.acked.entry(*node).or_default().insert(epoch);
                // Idempotent.
                let once = ring.clone();
                assert_eq!(ring.acknowledge(*node, epoch), Ok(false));
                assert_eq!(ring, &once);
            } else {
                assert!(matches!(res, Err(RingError::UnknownEpoch { epoch: x, .. }) if x == epoch));
                assert_eq!(ring, &before);
            }
        }
        Op::Promote { live } => {
            let res = ring.try_promote(live, now);
            let eligible = before
                .pending()
                .filter(|p| live.is_subset(before.acks(p.epoch)));
            match (res, eligible) {
                (Some(e), Some(p)) => {
                    assert_eq!(e, p.epoch);
                    // Only promoted when every live node acked it.
                    assert!(live.iter().all(|n| before.acks(e).contains(n)));
                    assert_eq!(ring.primary().epoch, e);
                    assert_eq!(ring.primary().promoted_at, Some(now));
                    assert!(ring.primary().secret.ct_eq(&p.secret));
                    assert!(ring.pending().is_none());
                    let old = ring.get(before.primary().epoch).expect("old primary kept");
                    assert_eq!(old.state, KeyState::Retiring);
                    assert_eq!(ring.keys().count(), before_len);
                }
                (None, None) => assert_eq!(ring, &before),
                (res, eligible) => panic!("promoted {res:?}, eligible {eligible:?}"),
            }
        }
        Op::Retire { keep } => {
            let dropped = ring.retire(*keep);
            let fixed = before_len - before.retiring().len();
            let want = before_len.min((*keep).max(1).max(fixed));
            assert_eq!(ring.keys().count(), want);
            let was: Vec<u64> = before.retiring().iter().map(|k| k.epoch).collect();
            assert_eq!(dropped, was[..before_len - want].to_vec(), "oldest first");
            assert_eq!(ring.primary(), before.primary());
            assert_eq!(ring.pending(), before.pending());
        }
        Op::Forget { node } => {
            let had = before.keys().any(|k| before.acks(k.epoch).contains(node));
            assert_eq!(ring.forget_node(*node), had);
            assert!(ring.keys().all(|k| !ring.acks(k.epoch).contains(node)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_rules_hold_over_random_sequences(
        seed in any::<[u8; 32]>(),
        start in 0u64..1_000_000,
        steps in proptest::collection::vec((op(), 0u64..50_000), 1..80),
    ) {
        let secret = Secret32::new(seed);
        let mut history = History {
            max_issued: 1,
            secrets: vec![secret.to_hex().to_string()],
            ..History::default()
        };
        let mut ring = KeyRing::seed(secret, start);
        check_invariants(&ring);
        let mut now = start;
        for (op, dt) in &steps {
            now += dt;
            apply(&mut ring, &mut history, op, now);
            check_invariants(&ring);
            check_debug_and_serde(&ring, &history);
        }
    }

    #[test]
    fn due_for_rotation_matches_its_rule(
        created in 0u64..1_000_000,
        now in 0u64..2_000_000,
        interval in 0u64..1_000_000,
        pending in any::<bool>(),
    ) {
        let mut ring = KeyRing::seed(Secret32::new([7; 32]), created);
        if pending {
            ring.begin_rotation(Secret32::new([8; 32]), created, RotationReason::Manual)
                .expect("begin");
        }
        let due = !pending && now >= created && now - created >= interval;
        prop_assert_eq!(ring.due_for_rotation(now, interval), due);
    }

    #[test]
    fn node_removal_always_gives_a_fresh_pending_key(
        acks in proptest::collection::vec((0..NODES, any::<bool>()), 0..20),
        removed in 0..NODES,
    ) {
        // A rotation in progress that some nodes (perhaps the removed one)
        // installed; the removal must replace it with a newer key.
        let mut ring = KeyRing::seed(Secret32::new([1; 32]), 0);
        let first = ring
            .begin_rotation(Secret32::new([2; 32]), 10, RotationReason::Scheduled)
            .expect("begin");
        for (node, on_pending) in &acks {
            let epoch = if *on_pending { first } else { 1 };
            ring.acknowledge(*node, epoch).expect("ack");
        }
        let e = ring
            .begin_rotation(Secret32::new([3; 32]), 20, RotationReason::NodeRemoved(removed))
            .expect("removal supersedes");
        prop_assert!(e > first);
        prop_assert_eq!(ring.pending().map(|k| k.epoch), Some(e));
        prop_assert!(ring.get(first).is_none());
        prop_assert!(ring.acks(e).is_empty());
        prop_assert!(!ring.acks(1).contains(&removed));
    }
}

fn key_json(epoch: u64, state: &str) -> String {
    format!(
        r#"{{"epoch":{epoch},"created_at":1,"state":"{state}","secret":"{}"}}"#,
        "ab".repeat(32)
    )
}

fn parse(last: u64, keys: &[(u64, &str)], acks: &str) -> Result<KeyRing, String> {
    let keys: Vec<String> = keys.iter().map(|(e, st)| key_json(*e, st)).collect();
    let json = format!(
        r#"{{"last_epoch":{last},"keys":[{}],"acks":{acks}}}"#,
        keys.join(",")
    );
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

fn rejected(last: u64, keys: &[(u64, &str)], acks: &str, want: &str) {
    let err = parse(last, keys, acks).expect_err("invalid ring accepted");
    assert!(err.contains("invalid key ring"), "{keys:?}: {err}");
    assert!(err.contains(want), "{keys:?}: {err}");
}

#[test]
fn deserialization_checks_the_invariants() {
    let ok = parse(
        5,
        &[(2, "retiring"), (3, "primary"), (4, "pending")],
        r#"{"3":[1],"4":[]}"#,
    )
    .expect("valid");
    assert!(ok.acks(4).is_empty(), "empty ack sets are dropped");
    assert_eq!(ok.acks(3), &BTreeSet::from([1]));
    assert_eq!((ok.last_epoch(), ok.primary().promoted_at), (5, None));
    let p = ok.pending().expect("pending");
    assert_eq!(p.epoch, 4);

    rejected(1, &[], "{}", "holds 0 keys");
    let four = [
        (1, "retiring"),
        (2, "retiring"),
        (3, "retiring"),
        (4, "primary"),
    ];
    rejected(4, &four, "{}", "holds 4 keys");
    rejected(2, &[(1, "primary"), (2, "primary")], "{}", "out of order");
    rejected(2, &[(1, "pending"), (2, "primary")], "{}", "out of order");
    rejected(2, &[(1, "primary"), (2, "retiring")], "{}", "out of order");
    let two_pending = [(1, "primary"), (2, "pending"), (3, "pending")];
    rejected(3, &two_pending, "{}", "out of order");
    rejected(1, &[(1, "retiring")], "{}", "no primary");
    rejected(
        2,
        &[(2, "retiring"), (1, "primary")],
        "{}",
        "strictly increase",
    );
    rejected(1, &[(0, "primary")], "{}", "strictly increase");
    rejected(
        1,
        &[(1, "retiring"), (2, "primary")],
        "{}",
        "last issued epoch 1",
    );
    rejected(1, &[(1, "primary")], r#"{"2":[1]}"#, "epoch 2");
}

#[test]
fn exhausted_epochs_are_an_error_that_changes_nothing() {
    let json = format!(
        r#"{{"last_epoch":{},"keys":[{},{}],"acks":{{"{}":[4]}}}}"#,
        u64::MAX,
        key_json(1, "primary"),
        key_json(u64::MAX, "pending"),
        u64::MAX
    );
    let mut ring: KeyRing = serde_json::from_str(&json).expect("valid");
    let before = ring.clone();
    let err = ring
        .begin_rotation(Secret32::new([3; 32]), 1, RotationReason::NodeRemoved(4))
        .expect_err("exhausted");
    assert_eq!(err, RingError::EpochsExhausted { last: u64::MAX });
    assert!(err.to_string().contains(&u64::MAX.to_string()));
    assert_eq!(ring, before, "the pending key and the acks stay");
}

/// Node removals that supersede the pending key again and again would walk the epochs round
/// the tag space; the ring skips epochs whose tag a kept key has.
#[test]
fn superseded_pending_keys_never_reuse_a_kept_keys_tag() {
    let mut ring = KeyRing::seed(Secret32::new([1; 32]), 100);
    ring.begin_rotation(Secret32::new([2; 32]), 101, RotationReason::Manual)
        .expect("ring step");
    ring.acknowledge(1, 2).expect("ring step");
    ring.try_promote(&[1].into_iter().collect(), 102)
        .expect("ring step");
    // Epoch 1 retiring, 2 primary. Forty removals, each superseding the pending key.
    for n in 0..40u64 {
        let epoch = ring
            .begin_rotation(
                Secret32::new([3; 32]),
                103 + n,
                RotationReason::NodeRemoved(100 + n),
            )
            .expect("ring step");
        assert_ne!(epoch % 16, 1, "tag of retiring epoch 1 reused by {epoch}");
        assert_ne!(epoch % 16, 2, "tag of primary epoch 2 reused by {epoch}");
        check_invariants(&ring);
    }
}
