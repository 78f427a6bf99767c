//! The processes one run is spread over: one, in the plain build, or the
//! ranks of an MPI world (`--features mpi`, started by `mpirun`).
//!
//! Every rank runs the same code on its own rows; the few places where
//! ranks meet go through [`Comm`]. Sums over ranks add the ranks' parts in
//! rank order, never in arrival order, so a result never depends on timing.
//! Only the thread that started the run talks to MPI (rayon's threads never
//! do), one call at a time.

use std::ops::Range;

/// This process's place among the ranks.
pub struct Comm {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    world: Option<mpi_impl::World>,
}

impl Comm {
    /// A run of one process.
    pub fn single() -> Self {
        Comm {
            rank: 0,
            size: 1,
            #[cfg(feature = "mpi")]
            world: None,
        }
    }

    /// The MPI world this process was started in.
    #[cfg(feature = "mpi")]
    pub fn world(universe: &mpi::environment::Universe) -> Self {
        use mpi::traits::Communicator;
        let world = universe.world();
        Comm { rank: world.rank() as usize, size: world.size() as usize, world: Some(mpi_impl::World::new(world)) }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0 writes the output, the report and the progress bar.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Element-wise sums over the ranks, in rank order: each rank sums one
    /// slice of the elements (the others' parts of it arrive in one
    /// exchange), then every rank receives every sum. Each rank sends and
    /// receives about twice the vector.
    pub fn sum(&self, values: &mut [f64]) {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            mpi_impl::sum(&world.lock(), values);
        }
        // One process: the values are their own sums.
        let _ = values;
    }

    /// Every rank's `local` values, concatenated in rank order, on every rank.
    pub fn gather<T: Element>(&self, local: &[T]) -> Vec<T> {
        #[cfg(feature = "mpi")]
        if let Some(world) = &self.world {
            return mpi_impl::gather(&world.lock(), local);
        }
        local.to_vec()
    }

    /// Whether every rank got this far without an error. A failed rank
    /// keeps its own error; the others stop with one saying who failed.
    pub fn agree<T>(&self, result: crate::error::Result<T>) -> crate::error::Result<T> {
        let failed = self.gather(&[u64::from(result.is_err())]);
        match (result, failed.iter().position(|&f| f == 1)) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(rank)) => Err(crate::error::Error::Internal(format!(
                "rank {} of {} stopped: rank {rank} failed",
                self.rank, self.size
            ))),
            (Ok(value), None) => Ok(value),
        }
    }
}

/// What [`Comm::gather`] can carry.
#[cfg(feature = "mpi")]
pub trait Element: Copy + Default + mpi::datatype::Equivalence {}
#[cfg(not(feature = "mpi"))]
pub trait Element: Copy + Default {}
impl Element for f64 {}
impl Element for f32 {}
impl Element for u64 {}

/// The `part`-th of `parts` near-equal contiguous slices of `0..len`.
pub fn share(len: usize, part: usize, parts: usize) -> Range<usize> {
    let at = |p: usize| (len as u128 * p as u128 / parts as u128) as usize;
    at(part)..at(part + 1)
}

#[cfg(feature = "mpi")]
mod mpi_impl {
    use mpi::datatype::{Partition, PartitionMut};
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    use super::{Element, share};

    /// The MPI world, which any thread may use while no other does.
    pub struct World(std::sync::Mutex<SimpleCommunicator>);

    // SAFETY: MPI was initialised with MPI_THREAD_SERIALIZED, under which
    // any thread may call MPI as long as no two calls overlap; every use of
    // the communicator goes through the mutex, so none do.
    unsafe impl Send for World {}
    // SAFETY: as above.
    unsafe impl Sync for World {}

    impl World {
        pub fn new(world: SimpleCommunicator) -> Self {
            World(std::sync::Mutex::new(world))
        }

        pub fn lock(&self) -> std::sync::MutexGuard<'_, SimpleCommunicator> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    fn counts_and_displs(lens: &[usize]) -> (Vec<i32>, Vec<i32>) {
        let counts: Vec<i32> = lens.iter().map(|&l| i32::try_from(l).expect("a message under 2^31 values")).collect();
        let displs = counts.iter().scan(0i32, |at, &c| Some(std::mem::replace(at, *at + c))).collect();
        (counts, displs)
    }

    pub fn gather<T: Element>(world: &SimpleCommunicator, local: &[T]) -> Vec<T> {
        let size = world.size() as usize;
        let mut lens = vec![0u64; size];
        world.all_gather_into(&(local.len() as u64), &mut lens[..]);
        let lens: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
        let (counts, displs) = counts_and_displs(&lens);
        let mut all = vec![T::default(); lens.iter().sum()];
        let mut out = PartitionMut::new(&mut all[..], counts, displs);
        world.all_gather_varcount_into(local, &mut out);
        all
    }

    pub fn sum(world: &SimpleCommunicator, values: &mut [f64]) {
        let (size, rank) = (world.size() as usize, world.rank() as usize);
        let parts: Vec<std::ops::Range<usize>> = (0..size).map(|r| share(values.len(), r, size)).collect();
        let mine = parts[rank].len();
        // Send part r of the vector to rank r; receive every rank's copy of my part.
        let (send_counts, send_displs) = counts_and_displs(&parts.iter().map(|p| p.len()).collect::<Vec<_>>());
        let (recv_counts, recv_displs) = counts_and_displs(&vec![mine; size]);
        let mut received = vec![0.0f64; mine * size];
        {
            let send = Partition::new(&*values, send_counts, send_displs);
            let mut recv = PartitionMut::new(&mut received[..], recv_counts, recv_displs);
            world.all_to_all_varcount_into(&send, &mut recv);
        }
        let mut summed = vec![0.0f64; mine];
        if mine > 0 {
            for from in received.chunks_exact(mine) {
                for (s, v) in summed.iter_mut().zip(from) {
                    *s += v;
                }
            }
        }
        let all = gather(world, &summed);
        values.copy_from_slice(&all);
    }
}

/// The rows of the pool this rank holds: `rows` samples from global id
/// `first`, out of `n` in all.
pub struct Part<'c> {
    pub comm: &'c Comm,
    pub first: usize,
    pub rows: usize,
    pub n: usize,
}

impl<'c> Part<'c> {
    /// The whole pool, in one process.
    pub fn whole(comm: &'c Comm, n: usize) -> Self {
        Part { comm, first: 0, rows: n, n }
    }

    /// Whether other ranks hold rows too.
    pub fn is_spread(&self) -> bool {
        self.comm.size() > 1
    }

    /// The local row of global sample `id`, if this rank holds it.
    pub fn local(&self, id: usize) -> Option<usize> {
        id.checked_sub(self.first).filter(|&i| i < self.rows)
    }

    /// The rows of global samples `ids`, in that order, on every rank:
    /// each row comes from the rank that holds it.
    pub fn rows(&self, local: ndarray::ArrayView2<f32>, ids: &[usize]) -> ndarray::Array2<f32> {
        if !self.is_spread() {
            return local.select(ndarray::Axis(0), ids);
        }
        let dim = local.ncols();
        // Every other rank adds zeros, so the sum is the owner's row, exactly.
        let mut rows = vec![0.0f64; ids.len() * dim];
        for (out, &id) in rows.chunks_exact_mut(dim.max(1)).zip(ids) {
            if let Some(i) = self.local(id) {
                out.iter_mut().zip(local.row(i)).for_each(|(o, &v)| *o = f64::from(v));
            }
        }
        self.comm.sum(&mut rows);
        ndarray::Array2::from_shape_vec((ids.len(), dim), rows.into_iter().map(|v| v as f32).collect())
            .expect("one row per id")
    }
}
