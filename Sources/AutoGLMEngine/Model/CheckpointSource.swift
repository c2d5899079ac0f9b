import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Linux `O_DIRECT` (a _GNU_SOURCE flag the Glibc module does not export).
#if arch(x86_64) || arch(i386)
private let directFlag: Int32 = 0o40000
#else
private let directFlag: Int32 = 0o200000
#endif

/// How weights reach memory.
public enum LoadMode: String, Sendable, CaseIterable {
    /// Every tensor is read into anonymous memory. Nothing can be reclaimed and re-read later, so a model larger
    /// than a memory cap fails (OOM) at load time, as it would on a phone, instead of thrashing the page cache.
    /// Reads bypass the page cache (O_DIRECT, or dropped behind), so a cgroup's accounting sees the copies only.
    case copy
    /// Tensors stay in the mapped file (page cache, reclaimable under pressure); nibble formats then run the
    /// row-major kernels, since regrouping them (`NibbleRowGroup`) would move them out of the page cache.
    case mmap
}

/// A GGUF checkpoint as a `TensorSource`, in `copy` or `mmap` mode. Also reads tensors stored in engine-only
/// formats (raw `i8` rows named in the `autoglm.engine_formats` metadata).
public final class CheckpointSource: TensorSource {
    public let file: GGUFFile
    public let mode: LoadMode
    /// Engine-only formats by tensor name.
    public let engineFormats: [String: PackedFormat]
    private var copies: [String: SourceTensor] = [:]
    /// Bytes copied into anonymous memory so far.
    public private(set) var copiedBytes = 0
    private let fd: Int32
    /// Whether copies are read with O_DIRECT.
    public private(set) var directIO: Bool

    public init(path: String, mode: LoadMode) throws {
        file = try GGUFFile(path: path)
        self.mode = mode
        var formats: [String: PackedFormat] = [:]
        for entry in (try file.stringArray(SyntheticCheckpoint.engineFormatsKey)) ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let f = PackedFormat(rawValue: parts[1]) else {
                throw ModelError.invalidHyperparameter(name: SyntheticCheckpoint.engineFormatsKey,
                                                       expected: "entries 'tensor=format' with an engine format",
                                                       got: entry)
            }
            formats[parts[0]] = f
        }
        engineFormats = formats
        if mode == .copy {
            // O_DIRECT keeps the reads out of the page cache (nothing reclaimable is charged to a cgroup); where the
            // filesystem refuses it, plain reads with the cache dropped behind them.
            let direct = open(path, O_RDONLY | directFlag)
            directIO = direct >= 0
            fd = direct >= 0 ? direct : open(path, O_RDONLY)
            guard fd >= 0 else {
                throw ModelError.invalidSetting(name: "checkpoint", expected: "a readable file",
                                                got: "\(path): \(String(cString: strerror(errno)))")
            }
        } else {
            fd = -1
            directIO = false
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public var sourceTensorNames: [String] { file.tensors.map(\.name) }

    /// Whether the file says it holds synthetic weights.
    public var isSynthetic: Bool { (try? file.bool(SyntheticCheckpoint.syntheticKey)) == true }

    public func sourceTensor(named name: String) throws -> SourceTensor? {
        if let t = copies[name] { return t }
        guard let info = file.tensor(named: name) else { return nil }
        let format: PackedFormat
        let dimensions: [Int]
        if let engine = engineFormats[name] {
            guard info.type == .i8, info.dimensions.count == 2 else {
                throw ModelError.unsupportedTensorType(name: name, type: "\(info.type) for engine format \(engine)")
            }
            let rowBytes = info.dimensions[0]
            guard let columns = Self.columns(rowBytes: rowBytes, format: engine) else {
                throw ModelError.tensorShape(name: name, expected: [rowBytes], got: info.dimensions)
            }
            format = engine
            dimensions = [columns, info.dimensions[1]]
        } else {
            guard let f = PackedFormat(ggml: info.type) else {
                throw ModelError.unsupportedTensorType(name: name, type: info.type.description)
            }
            format = f
            dimensions = info.dimensions
        }
        let bytes = file.data(for: info)
        guard let base = bytes.baseAddress else { throw ModelError.tensorShape(name: name, expected: info.dimensions, got: []) }
        switch mode {
        case .mmap:
            return SourceTensor(name: name, dimensions: dimensions, format: format, data: base,
                                byteCount: bytes.count, owner: file)
        case .copy:
            let storage = PackedStorage(byteCount: bytes.count)
            try read(into: storage.pointer, count: bytes.count, offset: info.offset, name: name)
            copiedBytes += bytes.count
            let t = SourceTensor(name: name, dimensions: dimensions, format: format,
                                 data: UnsafeRawPointer(storage.pointer), byteCount: bytes.count, owner: storage)
            copies[name] = t
            return t
        }
    }

    /// Columns of an engine-format row of `rowBytes` bytes.
    static func columns(rowBytes: Int, format: PackedFormat) -> Int? {
        if format == .int8 {
            let c = rowBytes - Int8RowLayout.scaleBytes
            return c > 0 ? c : nil   // padded to 4; the synthetic writer only uses column counts divisible by 4
        }
        guard rowBytes % format.blockBytes == 0 else { return nil }
        return rowBytes / format.blockBytes * format.blockElements
    }

    /// Reads `count` bytes at `offset`: with O_DIRECT through an aligned bounce buffer (falling back to buffered
    /// reads if the kernel rejects a direct read), else pread in 64 MiB pieces dropping the cached pages behind.
    private func read(into p: UnsafeMutableRawPointer, count: Int, offset: Int, name: String) throws {
        if directIO {
            if try readDirect(into: p, count: count, offset: offset, name: name) { return }
            directIO = false
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags & ~directFlag)
        }
        try readBuffered(into: p, count: count, offset: offset, name: name)
    }

    private static let alignment = 4096
    private static let bouncePiece = 16 << 20

    /// False when the filesystem rejects the direct read (EINVAL) before anything was copied.
    private func readDirect(into p: UnsafeMutableRawPointer, count: Int, offset: Int, name: String) throws -> Bool {
        let a = Self.alignment
        let bounce = UnsafeMutableRawPointer.allocate(byteCount: Self.bouncePiece + 2 * a, alignment: a)
        defer { bounce.deallocate() }
        var done = 0
        while done < count {
            let start = offset + done
            let alignedStart = start & ~(a - 1)
            let skip = start - alignedStart
            let want = min(Self.bouncePiece, count - done)
            let span = (skip + want + a - 1) & ~(a - 1)
            let got = pread(fd, bounce, span, off_t(alignedStart))
            if got < 0 && errno == EINVAL && done == 0 { return false }
            guard got > skip else {
                throw ModelError.invalidSetting(name: "tensor '\(name)'", expected: "\(count) readable bytes",
                                                got: got < 0 ? String(cString: strerror(errno))
                                                    : "end of file after \(done)")
            }
            let n = min(want, got - skip)
            (p + done).copyMemory(from: bounce + skip, byteCount: n)
            done += n
        }
        return true
    }

    private func readBuffered(into p: UnsafeMutableRawPointer, count: Int, offset: Int, name: String) throws {
        let piece = 64 << 20
        var done = 0
        while done < count {
            let want = min(piece, count - done)
            let got = pread(fd, p + done, want, off_t(offset + done))
            guard got > 0 else {
                throw ModelError.invalidSetting(name: "tensor '\(name)'", expected: "\(count) readable bytes",
                                                got: got == 0 ? "end of file after \(done)"
                                                    : String(cString: strerror(errno)))
            }
            _ = posix_fadvise(fd, off_t(offset + done), off_t(got), Int32(POSIX_FADV_DONTNEED))
            done += got
        }
    }

    public var keepsWeightsMapped: Bool { mode == .mmap }

    /// Forgets the per-tensor cache (the loaded model keeps its own references).
    public func releaseCache() { copies.removeAll() }

    /// Drops one tensor's copy from the cache (the loader regroups it in place); a later request reads it again.
    public func forgetCopy(named name: String) { copies[name] = nil }
}
