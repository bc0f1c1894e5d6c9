//! Docker's overlay2 and podman's overlay and vfs drivers doing the same
//! first write, in the same run.

use super::table::Progress;
use super::{Params, Results};
use crate::bench::Options;

pub fn run(_opts: &Options, p: &Params, pr: &mut Progress, _res: &mut Results) {
    pr.skip(3 * p.peer_sizes.len() * (1 + p.peer_samples));
}
