import Foundation

/// Picks the cgroup interface to use under a root directory.
///
/// Rule: v2 when a unified hierarchy (`<root>` itself, or `<root>/unified` on hybrid hosts) lists `memory` in its
/// `cgroup.controllers`; else v1 when `<root>/memory/memory.limit_in_bytes` exists and the parent group directory is
/// writable; else ``EmulatorError/noMemoryController(root:detail:)`` or ``EmulatorError/permissionDenied(path:operation:reason:)``.
/// Groups go under `parent` when given. Otherwise, on v1 under this process's own group in each hierarchy (read from
/// `/proc/self/cgroup`, so enclosing limits still apply); on v2 under the root of the hierarchy when it is writable
/// (the root is exempt from v2's no-internal-processes rule), else under this process's own group.
public struct CgroupDetector: Sendable {
    public var root: String
    /// File listing this process's groups (`<id>:<controllers>:<path>` per line).
    public var selfCgroupFile: String
    /// Hierarchy path to create groups under; nil for this process's own group.
    public var parent: String?

    public init(root: String = "/sys/fs/cgroup", selfCgroupFile: String = "/proc/self/cgroup", parent: String? = nil) {
        self.root = root
        self.selfCgroupFile = selfCgroupFile
        self.parent = parent
    }

    /// This process's group path per v1 controller name, and under key `""` its v2 path.
    public func ownGroups() -> [String: String] {
        guard let text = try? KnobIO(kernel: false).read(selfCgroupFile) else { return [:] }
        var groups: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[1].isEmpty {
                groups[""] = String(fields[2])
            } else {
                for controller in fields[1].split(separator: ",") { groups[String(controller)] = String(fields[2]) }
            }
        }
        return groups
    }

    public func detect() throws(EmulatorError) -> any CgroupBackend {
        let io = KnobIO(kernel: false)
        let own = ownGroups()
        for mount in [root, joinPath(root, "unified")] {
            let controllersFile = joinPath(mount, "cgroup.controllers")
            guard io.exists(controllersFile), let text = try? io.read(controllersFile) else { continue }
            guard text.split(whereSeparator: \.isWhitespace).contains("memory") else { continue }
            // A v2 group other than the root cannot hold processes and hand controllers to children at once, and this
            // process sits in its own group; so by default groups go under the root when it is writable.
            let parentPath = parent ?? (access(mount, W_OK) == 0 ? "/" : own[""] ?? "/")
            let parentDirectory = joinPath(mount, parentPath)
            guard io.exists(parentDirectory) else {
                throw .noMemoryController(root: mount, detail: "parent group \(parentDirectory) does not exist")
            }
            guard access(parentDirectory, W_OK) == 0 else {
                throw .permissionDenied(path: parentDirectory, operation: "create groups in", reason: errnoText())
            }
            return CgroupV2(mount: mount, parent: parentPath)
        }
        let memoryRoot = joinPath(root, "memory")
        guard io.exists(joinPath(memoryRoot, "memory.limit_in_bytes")) else {
            let unified = io.exists(joinPath(root, "unified", "cgroup.controllers"))
                || io.exists(joinPath(root, "cgroup.controllers"))
            throw .noMemoryController(
                root: root,
                detail: unified
                    ? "the unified (v2) hierarchy does not offer the memory controller and no v1 memory hierarchy is mounted"
                    : "neither a v2 hierarchy with the memory controller nor a v1 memory hierarchy is mounted there")
        }
        var parents: [String: String] = [:]
        for controller in ["memory", "cpu", "cpuset"] {
            parents[controller] = parent ?? own[controller] ?? "/"
        }
        // Fall back to the hierarchy root when our own group is not visible under this mount (e.g. another namespace).
        for (controller, path) in parents where parent == nil && !io.exists(joinPath(root, controller, path)) {
            parents[controller] = "/"
        }
        let parentDirectory = joinPath(memoryRoot, parents["memory"] ?? "/")
        guard access(parentDirectory, W_OK) == 0 else {
            throw .permissionDenied(path: parentDirectory, operation: "create groups in", reason: errnoText())
        }
        return CgroupV1(root: root, parents: parents)
    }
}
