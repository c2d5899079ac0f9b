import Foundation

/// A uniquely named, capped group that lives until ``remove()`` (or ``withSession(backend:limits:body:)`` returns or throws).
///
/// The name is `autoglm-<pid>-<random hex>`. Creation writes the limits and verifies them by reading them back; a
/// failure leaves nothing behind. Removal kills whatever is still in the group, then removes each controller's
/// directory; it is idempotent.
public final class CgroupSession {
    public let backend: any CgroupBackend
    public let group: CgroupGroup
    public let requested: EmulationLimits
    public let applied: AppliedLimits
    public private(set) var removed = false

    public init(backend: any CgroupBackend, limits: EmulationLimits, name: String? = nil) throws(EmulatorError) {
        let name = name ?? Self.uniqueName()
        self.backend = backend
        self.requested = limits
        (group, applied) = try backend.createGroup(named: name, limits: limits)
    }

    deinit {
        if !removed { try? backend.removeGroup(group) }
    }

    public static func uniqueName() -> String {
        String(format: "autoglm-%d-%08x", getpid(), UInt32.random(in: 0...UInt32.max))
    }

    /// Kills anything left in the group and removes it.
    public func remove() throws(EmulatorError) {
        guard !removed else { return }
        try backend.removeGroup(group)
        removed = true
    }

    /// Runs `body` with a fresh group and removes the group whether `body` returns or throws.
    public static func withSession<T>(
        backend: any CgroupBackend, limits: EmulationLimits, body: (CgroupSession) throws -> T
    ) throws -> T {
        let session = try CgroupSession(backend: backend, limits: limits)
        do {
            let value = try body(session)
            try session.remove()
            return value
        } catch {
            try? session.remove()
            throw error
        }
    }
}
