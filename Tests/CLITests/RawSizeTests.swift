import Foundation
import Testing

@testable import TestSupport

@Suite(.serialized) struct RawSizeTests {
    /// Raw files whose length is not a multiple of 512: data to the end, a hole to the end, data then a hole.
    static let makeOddRawFiles = """
        set -e
        head -c 1000 /dev/urandom > data-1000.raw
        truncate -s 1000 hole-1000.raw
        head -c 600 /dev/urandom > mixed-5000.raw && truncate -s 5000 mixed-5000.raw
        truncate -s 1M tail.raw && printf 'x' | dd of=tail.raw bs=1 seek=1048476 conv=notrunc 2>/dev/null
        truncate -s 1049576 tail.raw
        qemu-img create -q -f qcow2 -b data-1000.raw -F raw over-1000.qcow2
        """

    @Test("a raw file that is not a sector multiple maps as qemu shows it: rounded up to 512, padding zero")
    func mapsLikeQemu() throws {
        let scratch = try TemporaryDirectory(setup: Self.makeOddRawFiles)
        defer { scratch.cleanup() }
        let db = scratch.path("index.sqlite")
        let files = [
            ("data-1000.raw", 1000, 1024), ("hole-1000.raw", 1000, 1024), ("mixed-5000.raw", 5000, 5120),
            ("tail.raw", 1_049_576, 1_049_600),
        ]
        for (name, fileSize, size) in files {
            let map = try extentdb(["map", "--output", "json", name], database: db, directory: scratch.url)
            #expect(map.status == 0, "\(map.stderr)")
            let qemu = try run("qemu-img", ["map", "-f", "raw", "--output=json", name], in: scratch.url)
            #expect(map.stdout == qemu, "\(name)")
            let numbers = try ImageNumbers(image: name, database: db, directory: scratch.url)
            #expect(numbers.virtualSize == size, "\(name)")
            numbers.check(name)
            let info = try extentdb(["info", "--output", "json", name], database: db, directory: scratch.url)
            let metadata = (try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])?["metadata"] as? [String: Any]
            #expect(metadata?["virtual_size"] as? Int == size && metadata?["file_size"] as? Int == fileSize, "\(name)")
        }
        // As the backing file of a qcow2 overlay (created by qemu at the rounded size): the padding is the
        // backing file's zeros, at depth 1.
        let overlay = try extentdb(["map", "--output", "json", "over-1000.qcow2"], database: db, directory: scratch.url)
        #expect(overlay.stdout == (try run("qemu-img", ["map", "--output=json", "over-1000.qcow2"], in: scratch.url)))
    }

    @Test("exports of a 1,000-byte raw file (raw, qcow2, vhd, xva) are the 1,024-byte disk qemu sees")
    func exportsCompareEqual() throws {
        let scratch = try TemporaryDirectory(setup: Self.makeOddRawFiles)
        defer { scratch.cleanup() }
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try shell(
            """
            set -e -o pipefail
            export EXTENTDB_DB=\(scratch.path("index.sqlite"))
            for image in data-1000.raw mixed-5000.raw tail.raw; do
                '\(binary)' export "$image" --format raw --to "$image.out.raw"
                test "$(stat -c %s "$image.out.raw")" -eq "$(qemu-img info -f raw --output=json "$image" | sed -n 's/.*"virtual-size": \\([0-9]*\\).*/\\1/p')"
                qemu-img compare -q -f raw -F raw "$image.out.raw" "$image"
                '\(binary)' export "$image" --format raw | cat > "$image.piped.raw"
                qemu-img compare -q -f raw -F raw "$image.piped.raw" "$image"
                '\(binary)' export "$image" --format qcow2 --to "$image.qcow2"
                qemu-img check -q "$image.qcow2"
                qemu-img compare -q -F raw "$image.qcow2" "$image"
                '\(binary)' export "$image" --format vhd --to "$image.vhd"
                qemu-img compare -q --image-opts driver=vpc,force_size_calc=current_size,file.filename="$image.vhd" driver=raw,file.filename="$image"
                '\(binary)' export "$image" --format xva --to "$image.xva"
                tar tf "$image.xva" > "$image.members"
                grep -qx 'Ref:0/00000000' "$image.members"
            done
            """, in: scratch.url)
        // The XVA's one chunk is the whole 1,024-byte disk.
        let listing = try run("tar", ["tvf", "data-1000.raw.xva"], in: scratch.url)
        #expect(listing.contains(" 1024 ") && listing.contains("Ref:0/00000000"), "\(listing)")
    }
}
