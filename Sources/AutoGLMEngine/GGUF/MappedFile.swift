// Read-only memory mapping of a file.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only into memory. The mapping lives as long as the object; `bytes` must not be used after
/// the last reference is dropped.
///
/// The memory is never written, so sharing one instance between threads is safe.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened from (or the label given to an in-memory buffer).
    public let path: String
    /// The whole file.
    public let bytes: UnsafeRawBufferPointer

    private enum Storage {
        case mapped(UnsafeMutableRawPointer, length: Int)
        case heap(UnsafeMutableRawBufferPointer)
        case empty
    }
    private let storage: Storage

    /// Size of the file in bytes.
    public var count: Int { bytes.count }

    /// Maps the file at `path` read-only. Throws `GGUFError.cannotOpen` / `.cannotMap` with the system's reason.
    public init(path: String) throws(GGUFError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: MappedFile.systemError()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: path, reason: MappedFile.systemError()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        let length = Int(info.st_size)
        if length == 0 {
            storage = .empty
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .cannotMap(path: path, reason: MappedFile.systemError())
        }
        storage = .mapped(address, length: length)
        bytes = UnsafeRawBufferPointer(start: address, count: length)
    }

    /// Copies `contents` into an owned, aligned buffer; used for parsing bytes that are not on disk.
    public init(copying contents: some Collection<UInt8>, label: String) {
        path = label
        let length = contents.count
        if length == 0 {
            storage = .empty
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        _ = buffer.initializeMemory(as: UInt8.self, from: contents)
        storage = .heap(buffer)
        bytes = UnsafeRawBufferPointer(buffer)
    }

    /// Tells the kernel the whole mapping will be needed soon (a hint; failures are ignored).
    public func adviseWillNeed() {
        if case let .mapped(address, length) = storage {
            _ = madvise(address, length, MADV_WILLNEED)
        }
    }

    /// Tells the kernel the mapped pages wholly inside `offset ..< offset + count` are not needed now
    /// (MADV_DONTNEED), so they stop counting towards the resident set; a later read maps the file's bytes again.
    /// For the parsed header and metadata, which the engine keeps as values of its own. No effect on in-memory
    /// buffers.
    public func releasePages(offset: Int, count: Int) {
        guard case let .mapped(address, length) = storage, offset >= 0, count > 0, offset < length else { return }
        Self.advise(UnsafeRawPointer(address) + offset, count: min(count, length - offset), MADV_DONTNEED)
    }

    /// `madvise` over the whole pages inside `start ..< start + count` (a partial page at either end is left
    /// alone: it may hold bytes still in use). A hint: failures are ignored.
    static func advise(_ start: UnsafeRawPointer, count: Int, _ advice: Int32) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0, count > 0 else { return }
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + count) / page * page
        guard end > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(p, end - first, advice)
    }

    deinit {
        switch storage {
        case let .mapped(address, length):
            munmap(address, length)
        case let .heap(buffer):
            buffer.deallocate()
        case .empty:
            break
        }
    }

    private static func systemError() -> String {
        String(cString: strerror(errno))
    }
}
