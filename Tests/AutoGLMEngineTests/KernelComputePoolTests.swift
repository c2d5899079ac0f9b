import Foundation
import Synchronization
import Testing
@testable import AutoGLMEngine

@Suite("Compute pool")
struct KernelComputePoolTests {
    @Test("every index runs exactly once", arguments: [1, 2, 3, 8])
    func everyIndexOnce(threads: Int) {
        let pool = ComputePool(threadCount: threads, spinIterations: 1000)
        #expect(pool.threadCount == threads)
        for count in [0, 1, 2, 5, 64, 1000, 4097] {
            let hits = Counters(count)
            pool.parallelFor(count) { i in hits.increment(i) }
            for i in 0..<count { #expect(hits.value(i) == 1, "count \(count) index \(i)") }
        }
    }

    @Test("many back-to-back jobs, including after workers went to sleep")
    func manyJobs() {
        let pool = ComputePool(threadCount: 2, spinIterations: 10)
        let total = Counters(1)
        for job in 0..<2000 {
            pool.parallelFor(7) { i in total.add(i + 1) }
            if job % 500 == 0 { usleep(2000) }
        }
        #expect(total.value(0) == 2000 * 28)
    }

    @Test("short jobs back to back: each job's indices run exactly once, with that job's body")
    func stressShortJobs() {
        for spin in [0, 50, 100_000] {
            let pool = ComputePool(threadCount: 4, spinIterations: spin)
            let late = Counters(1)
            for job in 0..<3000 {
                let count = 1 + job % 5
                let hits = Counters(count)
                pool.parallelFor(count) { i in
                    hits.increment(i)
                    if i >= count { late.add(1) }
                }
                for i in 0..<count where hits.value(i) != 1 {
                    Issue.record("spin \(spin) job \(job) index \(i) ran \(hits.value(i)) times")
                }
            }
            #expect(late.value(0) == 0)
        }
    }

    @Test("a worker that sees a job late leaves its body alone once the caller has closed the slot")
    func lateWorkerLeavesClosedSlotAlone() {
        // Forced interleaving: the worker sees job G and is held before it pins the slot; the caller does all of
        // G's indices itself, closes the slot, sees no pin and is held before it clears the body; then the worker
        // pins and checks the slot. It must not read the body: the caller clears (and releases) it right after.
        // Before slots had an open mark the worker only re-checked the generation, which is still G at that point,
        // and read a body that was being released (a crash in CI and in calibrate-attention).
        let pool = ComputePool(threadCount: 2, spinIterations: 1_000_000)
        let target = ObjectIdentifier(pool.state)
        let workerSaw = DispatchSemaphore(value: 0), workerGo = DispatchSemaphore(value: 0)
        let reads = Mutex<[Int]>([])
        let armed = Mutex<Int?>(nil)
        PoolState.interleavingHook = { state, point, g in
            guard ObjectIdentifier(state) == target, armed.withLock({ $0 }) == g else { return }
            switch point {
            case .workerSawJob:
                workerSaw.signal()
                workerGo.wait()
            case .callerClosing:
                workerGo.signal()
                // Give the released worker time to pin, check and unpin before the body is cleared.
                usleep(200_000)
            case .workerReadsBody:
                reads.withLock { $0.append(g) }
            }
        }
        defer { PoolState.interleavingHook = nil }
        // The job after the next one is the one held; one warm-up job first, so the worker is spinning.
        pool.parallelFor(2) { _ in }
        let g = pool.state.generation.load(ordering: .sequentiallyConsistent) + 1
        armed.withLock { $0 = g }
        var ran = [0, 0]
        ran.withUnsafeMutableBufferPointer { buffer in
            let b = UncheckedPointer(buffer.baseAddress!)
            pool.parallelFor(2) { i in
                if i == 0 { _ = workerSaw.wait(timeout: .now() + 2) }  // the worker has seen the job first
                b.pointer[i] += 1
            }
        }
        armed.withLock { $0 = nil }
        pool.parallelFor(4) { _ in }  // the pool still works afterwards
        #expect(ran == [1, 1])
        #expect(reads.withLock { $0 }.isEmpty, "a worker read the body of job \(g) after its slot was closed")
    }

    @Test("parallelRanges covers 0..<count without overlap")
    func ranges() {
        let pool = ComputePool(threadCount: 3)
        for count in [1, 10, 1000] {
            let hits = Counters(count)
            pool.parallelRanges(count, minimumChunk: 3) { range in
                for i in range { hits.increment(i) }
            }
            #expect((0..<count).allSatisfy { hits.value($0) == 1 }, "count \(count)")
        }
    }

    @Test("nested parallelFor runs inline instead of deadlocking")
    func nested() {
        let pool = ComputePool(threadCount: 2)
        let total = Counters(1)
        pool.parallelFor(4) { _ in
            pool.parallelFor(3) { _ in total.add(1) }
        }
        #expect(total.value(0) == 12)
    }

    @Test("pools shut down cleanly when released, also right after creation")
    func shutdown() {
        for _ in 0..<20 {
            let pool = ComputePool(threadCount: 4, spinIterations: 100)
            let total = Counters(1)
            pool.parallelFor(16) { _ in total.add(1) }
            #expect(total.value(0) == 16)
        }
        for _ in 0..<20 { _ = ComputePool(threadCount: 3) }
    }

    @Test("concurrent callers are serialised and both complete")
    func concurrentCallers() async {
        let pool = ComputePool(threadCount: 2)
        let total = Counters(1)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<200 { pool.parallelFor(5) { _ in total.add(1) } }
                }
            }
        }
        #expect(total.value(0) == 4 * 200 * 5)
    }
}

/// Per-index atomic counters.
private final class Counters: @unchecked Sendable {
    let slots: UnsafeMutablePointer<Atomic<Int>>
    let count: Int
    init(_ count: Int) {
        self.count = max(count, 1)
        slots = .allocate(capacity: self.count)
        for i in 0..<self.count { (slots + i).initialize(to: Atomic(0)) }
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }
    func increment(_ i: Int) { slots[i].add(1, ordering: .relaxed) }
    func add(_ v: Int) { slots[0].add(v, ordering: .relaxed) }
    func value(_ i: Int) -> Int { slots[i].load(ordering: .relaxed) }
}

/// A pointer handed to pool bodies in tests (the bodies write disjoint elements).
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int>
    init(_ pointer: UnsafeMutablePointer<Int>) { self.pointer = pointer }
}
