import Foundation
import ImageFormats
import ImageIO
import Testing

@testable import Export
@testable import Scanner

/// The parent locators a differencing export writes (issue #13, item 4): relative W2ru and MacX, absolute W2ku.
@Suite struct VHDLocatorTests {
    @Test("relative paths climb with .. from the output's directory to the base")
    func relativePaths() {
        #expect(PathResolver.relative("/srv/base/parent.vhd", from: "/srv/out") == "../base/parent.vhd")
        #expect(PathResolver.relative("/srv/out/parent.vhd", from: "/srv/out") == "parent.vhd")
        #expect(PathResolver.relative("/srv/out/sub/parent.vhd", from: "/srv/out") == "sub/parent.vhd")
        #expect(PathResolver.relative("/a/b/parent.vhd", from: "/x/y/z") == "../../../a/b/parent.vhd")
        #expect(PathResolver.relative("/parent.vhd", from: "/") == "parent.vhd")
        #expect(PathResolver.relative("/srv/outer/p.vhd", from: "/srv/out") == "../outer/p.vhd")
        #expect(PathResolver.relative("/srv/out", from: "/srv/out/") == ".")
    }

    static func parent(_ reference: String) -> VHDStreamWriter.Parent {
        VHDStreamWriter.Parent(
            uniqueID: Array(repeating: 1, count: 16), timestamp: 0, name: "parent.vhd", relativePath: reference,
            absolutePath: "/srv/base/parent.vhd")
    }

    @Test("W2ru is the Windows relative form, MacX a relative file URL, W2ku the absolute path")
    func encodings() {
        let locators = VHDStreamWriter.locators(for: Self.parent("../base/parent.vhd"))
        #expect(locators.map(\.code) == ["W2ru", "MacX", "W2ku"])
        let decoded = locators.map { VHDText.locatorPath(code: $0.code, data: $0.data[...]) }
        #expect(VHDText.utf16(locators[0].data[...], bigEndian: false) == ".\\..\\base\\parent.vhd")
        #expect(String(decoding: locators[1].data, as: UTF8.self) == "file://../base/parent.vhd")
        #expect(VHDText.utf16(locators[2].data[...], bigEndian: false) == "\\srv\\base\\parent.vhd")
        #expect(decoded == [".\\..\\base\\parent.vhd", "../base/parent.vhd", "\\srv\\base\\parent.vhd"])
        #expect(VHDStreamWriter.windowsRelativePath("parent.vhd") == ".\\parent.vhd")
        #expect(VHDStreamWriter.fileURL("parent.vhd") == "file://./parent.vhd")
        #expect(VHDStreamWriter.windowsRelativePath("/srv/p.vhd") == "\\srv\\p.vhd")
        #expect(VHDStreamWriter.fileURL("/srv/my disk.vhd") == "file:///srv/my%20disk.vhd")
    }

    @Test("our reader resolves every locator written against the child's directory")
    func resolvesAgainstChildDirectory() {
        for (reference, childDirectory) in [
            ("../base/parent.vhd", "/srv/out"), ("parent.vhd", "/srv/base"), ("/srv/base/parent.vhd", "/elsewhere"),
        ] {
            for locator in VHDStreamWriter.locators(for: Self.parent(reference)) {
                let path = VHDText.locatorPath(code: locator.code, data: locator.data[...]) ?? ""
                #expect(
                    VHDParentLocator.resolve(path, directory: childDirectory) == "/srv/base/parent.vhd", "\(locator.code) of \(reference)")
            }
        }
    }
}
