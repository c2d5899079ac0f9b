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
/// dynamically through an atomic counter, so uneven work balances itself. Jobs from different threads are
/// serialised; a body must not call `parallelFor` on the same pool (that call runs inline on the calling worker).
public final class ComputePool: @unchecked Sendable {
    /// Threads that work on each job, including the caller.
    public let threadCount: Int
    private let state: PoolState
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

private final class WorkerContext {
    let state: PoolState
    let index: Int
    init(state: PoolState, index: Int) { self.state = state; self.index = index }
}

/// Shared state between the pool's owner and its workers. Workers hold this, not the pool, so the pool can be
/// released (and shut the workers down) while they are still alive.
final class PoolState: @unchecked Sendable {
    let generation = Atomic<Int>(0)
    let nextIndex = Atomic<Int>(0)
    let active = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let spinIterations: Int
    var workerCount = 0
    // Job description, written by the caller before `generation` is published (release) and read by workers
    // after they observe it (acquire).
    private var jobCount = 0
    private var jobBody: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var submitLock = pthread_mutex_t()

    private static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static var isWorkerThread: Bool { pthread_getspecific(workerKey) != nil }

    init(spinIterations: Int) {
        self.spinIterations = spinIterations
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        pthread_mutex_init(&submitLock, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&submitLock)
    }

    func run(count: Int, body: @escaping (Int) -> Void) {
        pthread_mutex_lock(&submitLock)
        jobCount = count
        jobBody = body
        nextIndex.store(0, ordering: .relaxed)
        active.store(workerCount, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
        }
        drain(count: count, body: body)
        // Wait for the workers to finish their share; they only ever take a few indices each.
        while active.load(ordering: .acquiring) != 0 {}
        jobBody = nil
        pthread_mutex_unlock(&submitLock)
    }

    @inline(__always) private func drain(count: Int, body: (Int) -> Void) {
        while true {
            let i = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= count { return }
            body(i)
        }
    }

    func workerLoop() {
        pthread_setspecific(PoolState.workerKey, UnsafeRawPointer(bitPattern: 1))
        // Every job must be seen by every worker (the caller waits for all of them), so start from generation 0
        // even if the first job was published before this thread got here.
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
            if let body = jobBody {
                drain(count: jobCount, body: body)
            }
            active.subtract(1, ordering: .releasing)
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
