//! Fencing inside the batch transaction: a partition's first batch under a
//! new assignment claims it, later batches check that nobody claimed it
//! since (see [`crate::store::fence`]).

use super::{BatchReport, Fence, Fences, PartitionKey, Pipeline};
use crate::store::fence;

impl Pipeline {
    /// Claims or checks every fence of the batch (inside its transaction):
    /// claimed generations go to `report.claimed`, partitions somebody else
    /// claimed meanwhile to `report.fenced`. A claim forgets the cached
    /// checkpoint, so the first batch reads the one the previous owner left.
    pub(super) fn enforce_fences(
        &mut self,
        fences: &Fences,
        report: &mut BatchReport,
    ) -> anyhow::Result<()> {
        for (key, f) in fences {
            match f {
                Fence::Claim(owner) => {
                    let g = self.db.with(|c| fence::claim(c, &key.0, key.1, owner))?;
                    self.checkpoints.remove(key);
                    report.delivery.claimed.insert(key.clone(), g);
                }
                Fence::Hold(g) => {
                    let now = self.db.with(|c| fence::current(c, &key.0, key.1))?;
                    if now.as_ref().map(|(cur, _)| *cur) != Some(*g) {
                        let (cur, owner) = now.unwrap_or((0, String::new()));
                        tracing::error!(source = &*key.0, partition = key.1, held = *g, current = cur, %owner,
                            "Another consumer claimed this partition since this one did; its events in this batch are not applied.");
                        self.checkpoints.remove(key);
                        report.delivery.fenced.insert(key.clone(), cur);
                    }
                }
            }
        }
        Ok(())
    }

    /// The generation a batch stamps on a partition's checkpoint.
    pub(super) fn generation(fences: &Fences, report: &BatchReport, key: &PartitionKey) -> i64 {
        match (report.claimed.get(key), fences.get(key)) {
            (Some(g), _) | (None, Some(Fence::Hold(g))) => *g,
            _ => 0,
        }
    }
}
