import Foundation
import Synchronization
import Testing
@testable import AutoGLMProcess

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signals the interruption test delivered to its reading thread (written from the signal handler).
private let interruptions = Atomic<Int>(0)

@Suite("Captured child processes")
struct CapturedProcessTests {
    @Test("stdout, stderr and the exit status come back separately")
    func collectsBothStreams() throws {
        let r = try CapturedProcess.run("/bin/sh", ["-c", "printf out; printf err >&2; exit 7"])
        #expect(r.stdoutText == "out")
        #expect(r.stderrText == "err")
        #expect(r.status == 7)
        #expect(!r.uncaughtSignal)
    }

    @Test("a child that fills the stderr pipe while stdout stays open does not deadlock")
    func drainsBothPipesAtOnce() throws {
        // 1 MiB to stderr first: far beyond a pipe's 64 KiB buffer, so reading stdout first alone would hang.
        let r = try CapturedProcess.run("/bin/sh", ["-c", "head -c 1048576 /dev/zero >&2; printf done"])
        #expect(r.stderr.count == 1 << 20)
        #expect(r.stdoutText == "done")
    }

    @Test("a child killed by a signal reports the signal")
    func uncaughtSignal() throws {
        let r = try CapturedProcess.run("/bin/sh", ["-c", "kill -KILL $$"])
        #expect(r.uncaughtSignal)
        #expect(r.status == SIGKILL)
    }

    @Test("working directory, environment and a discarded stderr")
    func options() throws {
        let r = try CapturedProcess.run("/bin/sh", ["-c", "pwd; printf \"$PROBE\"; echo noise >&2"],
                                        currentDirectory: "/tmp", environment: ["PROBE": "x1"],
                                        captureStandardError: false)
        #expect(r.stdoutText == "/tmp\nx1")
        #expect(r.stderr.isEmpty)
    }

    @Test("a missing executable is an error naming it, not a crash")
    func missingExecutable() {
        #expect(throws: ProcessCaptureError.self) {
            try CapturedProcess.run("/nonexistent/autoglm-tool", [])
        }
    }

    @Test("reads interrupted by a signal (EINTR) are retried until end of file")
    func retriesInterruptedReads() throws {
        // A handler installed without SA_RESTART makes a blocking read() on a pipe fail with EINTR.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptions.add(1, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var previous = sigaction()
        sigaction(SIGUSR2, &action, &previous)
        defer { sigaction(SIGUSR2, &previous, nil) }
        interruptions.store(0, ordering: .relaxed)

        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        let outcome = Mutex<Result<Data, CapturedProcess.ReadError>?>(nil)
        let reader = Mutex<pthread_t?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // Threads may start with signals blocked; this one must take SIGUSR2 for the test to mean anything.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            reader.withLock { $0 = pthread_self() }
            let result = Result { () throws(CapturedProcess.ReadError) -> Data in try CapturedProcess.readToEnd(readEnd) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        var thread: pthread_t?
        while thread == nil { usleep(1_000); thread = reader.withLock { $0 } }
        let target = try #require(thread)
        // Interrupt the reader while it blocks with nothing to read, then between two writes.
        for _ in 0..<5 { usleep(20_000); pthread_kill(target, SIGUSR2) }
        let first: [UInt8] = Array("first ".utf8), second: [UInt8] = Array("second".utf8)
        _ = first.withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
        for _ in 0..<3 { usleep(20_000); pthread_kill(target, SIGUSR2) }
        _ = second.withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
        close(writeEnd)
        done.wait()
        close(readEnd)
        #expect(interruptions.load(ordering: .relaxed) >= 1)
        let data = try #require(outcome.withLock { $0 }).get()
        #expect(String(decoding: data, as: UTF8.self) == "first second")
    }
}
