import ArgumentParser
import Foundation
import LISAClient

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Administer LISA itself.", subcommands: [RotateKey.self, Backup.self, Restore.self, VerifyBackup.self]
    )

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Replace the admin key; the new key is printed once, the old one works for the grace period."
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("grace-period-seconds"), help: "How long the old key keeps working (default 3600).")
        var gracePeriodSeconds: Double?

        func run() async throws {
            try await reportingErrors {
                let rotation = try await global.makeClient().rotateAdminKey(gracePeriodSeconds: gracePeriodSeconds)
                switch global.output {
                case .json: try printJSON(rotation)
                case .table:
                    print("new admin key (shown only now): \(rotation.adminKey)")
                    print("the previous key works until \(ISO8601DateFormatter().string(from: rotation.previousKeyValidUntil))")
                }
            }
        }
    }
}
