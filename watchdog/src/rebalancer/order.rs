//! Which moves must wait for which: a move onto a device waits for the
//! earlier moves off that device that free the room it needs, so that moves
//! run side by side in any order their dependencies allow never fill a
//! destination beyond its capacity threshold.
//!
//! Why this is enough: at any moment a destination holds its starting bytes,
//! plus every incoming move that has started, minus the outgoing moves that
//! have finished (a source keeps its copy until the move is done). Take the
//! started incoming move latest in plan order, `k`: every started incoming
//! move is at or before `k`, and the outgoing moves `k` waited for are done.
//! So the device holds at most its start plus incoming moves up to `k` minus
//! those outgoing ones, which is what `k`'s dependencies were chosen to keep
//! under the limit.

/// For each move `(bytes, from, to)` in plan order, the indices of earlier
/// moves it must wait for. `start` and `limit` are each device's bytes
/// before the plan and its capacity threshold in bytes.
///
/// The plan order itself must keep every destination under its limit when
/// the moves run one at a time (the planner's invariant); the function
/// panics otherwise, since that would be a planner bug.
pub(super) fn dependencies(
    start: &[u64],
    limit: &[u64],
    moves: &[(u64, usize, usize)],
) -> Vec<Vec<usize>> {
    let mut incoming = vec![0u128; start.len()];
    let mut outgoing: Vec<Vec<(usize, u64)>> = vec![Vec::new(); start.len()];
    let mut after = Vec::with_capacity(moves.len());
    for (k, &(bytes, from, to)) in moves.iter().enumerate() {
        incoming[to] += u128::from(bytes);
        let needed = u128::from(start[to]) + incoming[to];
        let mut deps = Vec::new();
        if needed > u128::from(limit[to]) {
            let deficit = needed - u128::from(limit[to]);
            let mut freed = 0u128;
            for &(m, size) in &outgoing[to] {
                if freed >= deficit {
                    break;
                }
                freed += u128::from(size);
                deps.push(m);
            }
            assert!(
                freed >= deficit,
                "planner bug: move {k} overfills device {to} even after every earlier move off it"
            );
        }
        outgoing[from].push((k, bytes));
        after.push(deps);
    }
    after
}

#[cfg(test)]
mod tests {
    use super::dependencies;

    #[test]
    fn a_move_into_room_that_exists_waits_for_nothing() {
        let deps = dependencies(&[50, 10], &[80, 80], &[(20, 0, 1), (20, 1, 0)]);
        assert_eq!(deps, vec![Vec::<usize>::new(), vec![]]);
    }

    #[test]
    fn a_move_into_freed_room_waits_for_the_moves_that_free_it() {
        // Device 1 starts full (80 of 80): moves 0 and 1 free 30 + 30, and
        // move 2 brings 50 back, so it needs both.
        let deps = dependencies(
            &[0, 80, 0],
            &[100, 80, 100],
            &[(30, 1, 0), (30, 1, 2), (50, 0, 1)],
        );
        assert_eq!(deps[2], vec![0, 1]);
    }
}
