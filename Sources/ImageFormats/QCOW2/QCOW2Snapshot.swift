/// One entry of the internal snapshot table (qcow2.txt, "Snapshots").
///
/// ```
///  0 l1_table_offset   8 l1_size   12 id_str_size   14 name_size   16 date_sec   20 date_nsec
/// 24 vm_clock_nsec    32 vm_state_size   36 extra_data_size   40 extra data (40 vm_state_size_large,
/// 48 disk_size)   then id_str, name, padding to a multiple of 8
/// ```
public struct QCOW2Snapshot: Sendable, Equatable {
    public var l1TableOffset: UInt64
    public var l1Size: UInt32
    public var id: String
    public var name: String
    public var dateSeconds: UInt32
    public var dateNanoseconds: UInt32
    public var vmClockNanoseconds: UInt64
    public var vmStateSize: UInt64
    /// Virtual disk size at the time of the snapshot, when the entry records it.
    public var diskSize: UInt64?

    /// Parses `count` entries from the snapshot table bytes.
    ///
    /// - Parameter table: bytes from `snapshots_offset` to the end of the file (or a bounded prefix);
    ///   its `baseOffset` is `snapshots_offset`.
    public static func parseTable(_ table: inout ByteReader, count: UInt32) throws(FormatError) -> [QCOW2Snapshot] {
        var snapshots: [QCOW2Snapshot] = []
        snapshots.reserveCapacity(Int(min(count, 1024)))
        for _ in 0..<count {
            snapshots.append(try QCOW2Snapshot(parsing: &table))
        }
        return snapshots
    }

    public init(parsing r: inout ByteReader) throws(FormatError) {
        let entryStart = r.position
        l1TableOffset = try r.read(UInt64.self, field: "snapshot l1_table_offset")
        l1Size = try r.read(UInt32.self, field: "snapshot l1_size")
        let idSize = try r.read(UInt16.self, field: "snapshot id_str_size")
        let nameSize = try r.read(UInt16.self, field: "snapshot name_size")
        dateSeconds = try r.read(UInt32.self, field: "snapshot date_sec")
        dateNanoseconds = try r.read(UInt32.self, field: "snapshot date_nsec")
        vmClockNanoseconds = try r.read(UInt64.self, field: "snapshot vm_clock_nsec")
        vmStateSize = UInt64(try r.read(UInt32.self, field: "snapshot vm_state_size"))
        let extraSize = try r.read(UInt32.self, field: "snapshot extra_data_size")
        let extraOffset = r.offset
        var extra = ByteReader(try r.readBytes(Int(extraSize), field: "snapshot extra data"), baseOffset: extraOffset)
        if extraSize >= 8 { vmStateSize = try extra.read(UInt64.self, field: "snapshot vm_state_size_large") }
        diskSize = extraSize >= 16 ? try extra.read(UInt64.self, field: "snapshot disk_size") : nil
        id = String(decoding: try r.readBytes(Int(idSize), field: "snapshot id_str"), as: UTF8.self)
        name = String(decoding: try r.readBytes(Int(nameSize), field: "snapshot name"), as: UTF8.self)
        let used = r.position - entryStart
        let padding = (8 - used % 8) % 8
        if padding > 0, r.remaining >= padding { try r.skip(padding, field: "snapshot padding") }
    }
}
