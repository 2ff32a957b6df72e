/// Disk-image containers extentdb does not read, recognised by their magic so that they are named and
/// refused instead of being taken for raw disks (whose bytes would then be exported as guest data).
///
/// | format | where | magic |
/// |---|---|---|
/// | VHDX / AVHDX (Hyper-V) | 0 | `vhdxfile` (file type identifier, MS-VHDX §2.2.1) |
/// | VMDK sparse extent | 0 | `KDMV` (little-endian 0x564D444B) |
/// | VMDK ESX COW disk | 0 | `COWD` |
/// | VMDK descriptor | 0 | `# Disk DescriptorFile` |
/// | VDI (VirtualBox) | 64 | 0xBEDA107F, little-endian (`7F 10 DA BE`) |
/// | qcow version 1 | 0 | `QFI\xFB` with version 1 at 4 |
/// | QED | 0 | `QED\0` |
/// | Parallels | 0 | `WithoutFreeSpace` or `WithouFreSpacExt` |
/// | LUKS | 0 | `LUKS\xBA\xBE` |
public enum ForeignFormat {
    /// Bytes of the file's head that ``name(head:)`` needs.
    public static let headBytes = 72

    /// The name of the foreign container whose magic `head` starts with, or nil.
    public static func name(head: ArraySlice<UInt8>) -> String? {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && head.dropFirst(offset).prefix(magic.count).elementsEqual(magic)
        }
        if starts(Array("vhdxfile".utf8)) { return "VHDX" }
        if starts(Array("KDMV".utf8)) || starts(Array("COWD".utf8)) || starts(Array("# Disk DescriptorFile".utf8)) { return "VMDK" }
        if starts([0x7F, 0x10, 0xDA, 0xBE], at: 64) { return "VDI" }
        if starts([0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 1]) { return "qcow (version 1)" }
        if starts(Array("QED".utf8) + [0]) { return "QED" }
        if starts(Array("WithoutFreeSpace".utf8)) || starts(Array("WithouFreSpacExt".utf8)) { return "Parallels" }
        if starts(Array("LUKS".utf8) + [0xBA, 0xBE]) { return "LUKS" }
        return nil
    }
}
