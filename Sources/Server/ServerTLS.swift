import Foundation
import NIOSSL

/// `serve --tls-cert FILE --tls-key FILE`: HTTPS on the TCP listener. Both files are PEM: the certificate
/// file holds the server's certificate first, then any intermediates (the chain clients are sent); the key
/// file holds its private key, unencrypted (a service cannot ask for a passphrase).
///
/// Both are loaded and matched when the service starts, so a missing file, a file that is not PEM or a key
/// that does not belong to the certificate stops it with a message naming the file, before it listens.
/// TLS 1.2 is the oldest version offered (imageio and PBS ask no less).
public struct ServerTLS: Sendable {
    public var certificatePath: String
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// The server's TLS configuration, from the two files.
    /// - Throws: ``ServerConfiguration/Invalid`` naming the option and the file that is wrong.
    public func configuration() throws(ServerConfiguration.Invalid) -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(try Self.contents(of: certificatePath, option: "--tls-cert")))
        } catch let error as ServerConfiguration.Invalid {
            throw error
        } catch {
            throw ServerConfiguration.Invalid("--tls-cert \(certificatePath): not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else {
            throw ServerConfiguration.Invalid(
                "--tls-cert \(certificatePath): no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(try Self.contents(of: keyPath, option: "--tls-key")), format: .pem)
        } catch let error as ServerConfiguration.Invalid {
            throw error
        } catch {
            throw ServerConfiguration.Invalid("--tls-key \(keyPath): not an unencrypted PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            // Makes the context once now, so a key that is not the certificate's is refused at start.
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ServerConfiguration.Invalid(
                "--tls-key \(keyPath) does not match the certificate in --tls-cert \(certificatePath) (\(error))")
        }
        return configuration
    }

    /// True when the key file may be read by users other than its owner and group (it should be 0600 or 0640).
    public var keyIsWorldReadable: Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: keyPath),
            let mode = attributes[.posixPermissions] as? Int
        else { return false }
        return mode & 0o004 != 0
    }

    /// The bytes of `path`, bounded (a certificate chain or key is a few KiB; 1 MiB is plenty).
    private static func contents(of path: String, option: String) throws(ServerConfiguration.Invalid) -> Data {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ServerConfiguration.Invalid("\(option) \(path): cannot read it (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: (1 << 20) + 1) ?? Data()
        } catch {
            throw ServerConfiguration.Invalid("\(option) \(path): cannot read it (\(error))")
        }
        guard data.count <= 1 << 20 else { throw ServerConfiguration.Invalid("\(option) \(path): larger than 1 MiB, not a PEM file") }
        return data
    }
}
