// A persistent pool of worker threads for data-parallel kernels.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A fixed set of worker threads that run `parallelFor` bodies with low latency.
///
/// The calling thread takes part in every job, so `threadCount` is the total number of threads working on a job
/// (`threadCount − 1` background workers). After a job, workers spin for a short while waiting for the next one
/// (decode issues hundreds of jobs per token) and then sleep on a condition variable. Indices are handed out
/// dynamically through an atomic counter, so uneven work balances itself, and a job completes as soon as all its
/// indices are done: it never waits for a worker that is descheduled or asleep (the caller does that share). Jobs from different threads are
/// serialised. A `parallelFor` issued from inside a body (on any pool) runs inline on that thread.
public final class ComputePool: @unchecked Sendable {
    /// Threads that work on each job, including the caller.
    public let threadCount: Int
    let state: PoolState
    private var threads: [pthread_t] = []

    /// Number of processors available to this process (the default pool size).
    public static var availableCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Creates a pool. `threadCount` defaults to the active processor count and is clamped to 1...256.
    /// `spinIterations` is how long an idle worker polls for new work before it sleeps.
    public init(threadCount: Int? = nil, spinIterations: Int = 200_000) {
        let n = min(max(threadCount ?? ComputePool.availableCores, 1), 256)
        self.threadCount = n
        state = PoolState(spinIterations: max(0, spinIterations))
        for worker in 1..<max(n, 1) {
            let context = Unmanaged.passRetained(WorkerContext(state: state, index: worker)).toOpaque()
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 4 << 20)
            var thread = pthread_t()
            let rc = pthread_create(&thread, &attributes, { raw in
                #if canImport(Darwin)
                let context = Unmanaged<WorkerContext>.fromOpaque(raw).takeRetainedValue()
                #else
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                #endif
                context.state.workerLoop()
                return nil
            }, context)
            pthread_attr_destroy(&attributes)
            if rc == 0 {
                threads.append(thread)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                break
            }
        }
        state.workerCount = threads.count
    }

    deinit {
        state.shutdown()
        for t in threads { pthread_join(t, nil) }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, each exactly once, spread over the pool's threads, and returns
    /// when all have finished. Memory written by the bodies is visible to the caller afterwards.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threads.isEmpty || PoolState.isWorkerThread {
            for i in 0..<count { body(i) }
            return
        }
        // Indices travel in 32 bits of the claim ticket; split larger index spaces (never needed in practice).
        let limit = 1 << 31
        if count > limit {
            var start = 0
            while start < count {
                let base = start
                parallelFor(min(limit, count - base)) { body(base + $0) }
                start += limit
            }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            state.run(count: count, body: escapable)
        }
    }

    /// Splits `0..<count` into about `threadCount × chunksPerThread` contiguous ranges of at least `minimumChunk`
    /// indices and runs `body` on each range in parallel.
    public func parallelRanges(_ count: Int, minimumChunk: Int = 1, chunksPerThread: Int = 4,
                               _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let target = max(1, threadCount * max(1, chunksPerThread))
        let chunk = max(max(1, minimumChunk), (count + target - 1) / target)
        let chunks = (count + chunk - 1) / chunk
        parallelFor(chunks) { c in
            let start = c * chunk
            body(start..<min(start + chunk, count))
        }
    }
}

/// 64 bytes that keep the stored properties around them on different cache lines.
private struct CacheLinePadding {
    let words: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
}

private final class WorkerContext {
    let state: PoolState
    let index: Int
    init(state: PoolState, index: Int) { self.state = state; self.index = index }
}

/// Shared state between the pool's owner and its workers. Workers hold this, not the pool, so the pool can be
/// released (and shut the workers down) while they are still alive.
///
/// Protocol. A job is published as generation G: its body and count go into slot G & 1, the claim counter
/// `ticket` is set to (G << 32 | 0), then `generation` is set to G and sleeping workers are woken. Threads claim
/// indices with a compare-and-swap that only succeeds while the ticket still carries G, and count finished
/// indices in `done`; the caller is finished once `done` reaches the count. So a job never waits for a worker
/// that is descheduled or asleep: on a busy host the caller simply does more of the work itself.
///
/// Slot lifetime. Each slot has an `open` mark: the generation whose body it holds, or −1. The caller writes the
/// body, then marks the slot open; when the job is done it marks the slot closed, waits until no worker pins the
/// slot (`readers`), and only then clears the body (and later rewrites it). A worker pins the slot first and reads
/// the body only if the slot is still open for the generation it saw. Both sides use sequentially consistent
/// operations (store mark, then load pins; add pin, then load mark), so either the caller sees the pin and waits,
/// or the worker sees the slot closed and leaves the body alone: a late worker never reads a body that is being
/// cleared (the generation alone cannot tell it: it stays G until the next job). The only wait on another thread
/// is for a worker caught inside that short pinned window.
final class PoolState: @unchecked Sendable {
    // The three hot counters sit on separate cache lines (stored properties of a class are laid out in declaration
    // order; 64 bytes of padding between them): idle workers spin reading `generation` while threads claim indices
    // on `ticket` and count them on `done`, and sharing one line would bounce it between the cores on every claim.
    let generation = Atomic<Int>(0)
    private let padding0 = CacheLinePadding()
    let ticket = Atomic<UInt64>(0)
    private let padding1 = CacheLinePadding()
    let done = Atomic<Int>(0)
    private let padding2 = CacheLinePadding()
    let readers0 = Atomic<Int>(0)
    let readers1 = Atomic<Int>(0)
    let open0 = Atomic<Int>(-1)
    let open1 = Atomic<Int>(-1)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let spinIterations: Int
    var workerCount = 0
    // Two job slots (body and index count), addressed by generation parity. Raw storage, so reading one slot never
    // touches shared reference counts of a container the caller may be writing.
    private let bodies: UnsafeMutablePointer<((Int) -> Void)?>
    private let counts: UnsafeMutablePointer<Int>
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var submitLock = pthread_mutex_t()

    private static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static var isWorkerThread: Bool { pthread_getspecific(workerKey) != nil }

    /// Points of the protocol where a test can hold a thread to force an interleaving (see `interleavingHook`).
    enum InterleavingPoint: Sendable {
        /// A worker has seen a new generation and is about to pin its slot.
        case workerSawJob
        /// The caller has closed the slot of its finished job and seen no pin; it is about to clear the body.
        case callerClosing
        /// A worker is about to read the body of the job in its pinned slot.
        case workerReadsBody
    }

    /// Test-only: called at each `InterleavingPoint` with the pool's state and the generation; nil in production
    /// (one load and a branch per job, not per index).
    nonisolated(unsafe) static var interleavingHook: ((PoolState, InterleavingPoint, Int) -> Void)?

    init(spinIterations: Int) {
        self.spinIterations = spinIterations
        bodies = .allocate(capacity: 2)
        bodies.initialize(repeating: nil, count: 2)
        counts = .allocate(capacity: 2)
        counts.initialize(repeating: 0, count: 2)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        pthread_mutex_init(&submitLock, nil)
    }

    deinit {
        bodies.deinitialize(count: 2)
        bodies.deallocate()
        counts.deallocate()
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&submitLock)
    }

    @inline(__always) private func readers(_ slot: Int) -> Int {
        slot == 0 ? readers0.load(ordering: .sequentiallyConsistent) : readers1.load(ordering: .sequentiallyConsistent)
    }

    /// The generation whose body `slot` holds, or −1 while it is closed.
    @inline(__always) private func openGeneration(_ slot: Int) -> Int {
        slot == 0 ? open0.load(ordering: .sequentiallyConsistent) : open1.load(ordering: .sequentiallyConsistent)
    }

    @inline(__always) private func setOpen(_ slot: Int, _ g: Int) {
        if slot == 0 {
            open0.store(g, ordering: .sequentiallyConsistent)
        } else {
            open1.store(g, ordering: .sequentiallyConsistent)
        }
    }

    @inline(__always) private func pin(_ slot: Int, _ delta: Int) {
        if slot == 0 {
            readers0.add(delta, ordering: .sequentiallyConsistent)
        } else {
            readers1.add(delta, ordering: .sequentiallyConsistent)
        }
    }

    /// Claims and runs indices of job `g` until none are left or a newer job has been published.
    @inline(__always) private func work(generation g: Int, count: Int, body: (Int) -> Void) {
        let tag = UInt64(truncatingIfNeeded: g) << 32
        var t = ticket.load(ordering: .relaxed)
        while true {
            if t & 0xFFFF_FFFF_0000_0000 != tag { return }
            let index = Int(t & 0xFFFF_FFFF)
            if index >= count { return }
            let (exchanged, original) = ticket.compareExchange(expected: t, desired: t &+ 1,
                                                               ordering: .acquiringAndReleasing)
            if exchanged {
                body(index)
                done.add(1, ordering: .releasing)
                t = ticket.load(ordering: .relaxed)
            } else {
                t = original
            }
        }
    }

    func run(count: Int, body: @escaping (Int) -> Void) {
        pthread_mutex_lock(&submitLock)
        let g = (generation.load(ordering: .relaxed) &+ 1) & 0xFFFF_FFFF
        let slot = g & 1
        // A worker that pinned this slot late (after it was cleared) must let go before it is rewritten.
        while readers(slot) != 0 {}
        bodies[slot] = body
        counts[slot] = count
        setOpen(slot, g)
        done.store(0, ordering: .relaxed)
        ticket.store(UInt64(g) << 32, ordering: .releasing)
        generation.store(g, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
        }
        // While the caller works on the job it counts as a pool thread, so a nested parallelFor runs inline
        // instead of waiting for the submit lock it already holds.
        let previous = pthread_getspecific(PoolState.workerKey)
        pthread_setspecific(PoolState.workerKey, UnsafeRawPointer(bitPattern: 1))
        work(generation: g, count: count, body: body)
        pthread_setspecific(PoolState.workerKey, previous)
        // Indices claimed by workers may still be running.
        while done.load(ordering: .acquiring) != count {}
        // The body must not outlive this call: close the slot, wait for any worker still holding it, then clear it.
        setOpen(slot, -1)
        while readers(slot) != 0 {}
        if let hook = PoolState.interleavingHook { hook(self, .callerClosing, g) }
        bodies[slot] = nil
        pthread_mutex_unlock(&submitLock)
    }

    func workerLoop() {
        pthread_setspecific(PoolState.workerKey, UnsafeRawPointer(bitPattern: 1))
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                if stopping.load(ordering: .relaxed) { return }
                spins += 1
                if spins >= spinIterations {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen,
                          !stopping.load(ordering: .sequentiallyConsistent) {
                        pthread_cond_wait(&condition, &mutex)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            if stopping.load(ordering: .acquiring) { return }
            seen = current
            let slot = current & 1
            if let hook = PoolState.interleavingHook { hook(self, .workerSawJob, current) }
            pin(slot, 1)
            runPinned(slot: slot, generation: current)
            pin(slot, -1)
        }
    }

    /// Works on the job in `slot` if the slot is still open for generation `g` (the caller pinned it before calling).
    /// A separate function so that the worker's reference to the body is released when it returns, before the
    /// slot is unpinned: the caller's non-escaping closure must have no other owner once the caller sees the slot
    /// unpinned.
    @inline(never) private func runPinned(slot: Int, generation g: Int) {
        if openGeneration(slot) == g {
            if let hook = PoolState.interleavingHook { hook(self, .workerReadsBody, g) }
            guard let body = bodies[slot] else { return }
            work(generation: g, count: counts[slot], body: body)
        }
    }

    func shutdown() {
        pthread_mutex_lock(&mutex)
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
