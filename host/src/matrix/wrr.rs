//! The turn order: smooth weighted round robin.

/// Smooth weighted round robin (as in nginx): each pick adds every runnable
/// VM's weight to its credit, takes the VM with the most credit and charges
/// it the total. Over any `sum(weights)` picks each VM gets exactly its
/// weight, spread out as evenly as possible.
#[derive(Debug, Clone)]
pub struct Wrr {
    weight: Vec<i64>,
    credit: Vec<i64>,
}

impl Wrr {
    /// A scheduler for these weights.
    pub fn new(weights: &[u32]) -> Wrr {
        Wrr {
            weight: weights.iter().map(|&w| i64::from(w)).collect(),
            credit: vec![0; weights.len()],
        }
    }

    /// The next VM among the runnable ones.
    pub fn next(&mut self, runnable: &[bool]) -> Option<usize> {
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, _) in runnable.iter().enumerate().filter(|(_, r)| **r) {
            self.credit[i] += self.weight[i];
            total += self.weight[i];
            if best.is_none_or(|b| self.credit[i] > self.credit[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.credit[b] -= total;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrr_gives_each_vm_its_weight_interleaved() {
        let mut w = Wrr::new(&[7, 3]);
        let all = [true, true];
        let seq: Vec<usize> = (0..10).map(|_| w.next(&all).unwrap()).collect();
        assert_eq!(seq.iter().filter(|&&v| v == 0).count(), 7);
        assert_eq!(seq, [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]);
        // the light VM never waits more than 3 turns
        let mut w = Wrr::new(&[2, 1, 1]);
        let seq: Vec<usize> = (0..8).map(|_| w.next(&[true; 3]).unwrap()).collect();
        assert_eq!(seq.iter().filter(|&&v| v == 0).count(), 4);
        assert_eq!(seq.iter().filter(|&&v| v == 2).count(), 2);
        // a VM that is not runnable is skipped; none runnable: None
        let mut w = Wrr::new(&[1, 1]);
        assert_eq!(w.next(&[false, true]), Some(1));
        assert_eq!(w.next(&[false, true]), Some(1));
        assert_eq!(w.next(&[false, false]), None);
    }
}
