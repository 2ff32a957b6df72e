import Catalog
import Testing

@Suite struct HostOrderTests {
    @Test("each host's order is a permutation, the same on every run, different from another host's")
    func permutations() {
        for count in [0, 1, 2, 7, 1000] {
            let order = HostOrder.permutation(count: count, seed: "host1")
            #expect(order.sorted() == Array(0..<count))
            #expect(order == HostOrder.permutation(count: count, seed: "host1"))
        }
        let hosts = ["host1", "host2", "host3", "host4"].map { HostOrder.permutation(count: 1000, seed: $0) }
        for (index, order) in hosts.enumerated() {
            for other in hosts[(index + 1)...] { #expect(order != other) }
        }
        // Hosts starting together begin on different images: their first tens barely overlap.
        let firsts = hosts.map { Set($0.prefix(50)) }
        #expect(firsts[0].intersection(firsts[1]).count < 15)
    }
}
