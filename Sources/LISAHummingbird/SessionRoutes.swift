import Foundation
import Hummingbird
import LISAKit
import NIOCore

/// The sessions and prompt-template routes (LISA's paths): every principal sees only its
/// own sessions; templates are shared by group or publicly and changed by their owner.
struct SessionRoutes<Context: LISARoutesContext> {
    let sessions: SessionService
    let maxRequestBodySize: Int

    struct SaveRequest: Decodable {
        var history: JSONValue?
        var messages: JSONValue?
        var configuration: JSONValue?
        var name: String?
    }

    struct RenameRequest: Decodable {
        var name: String
    }

    func add(to group: RouterGroup<Context>) {
        let sessions = self.sessions
        group.get("/session") { _, context in
            try LISARoutes.encode(try await sessions.sessions(of: try context.requirePrincipal()))
        }
        group.delete("/session") { _, context in
            let deleted = try await sessions.deleteAll(of: try context.requirePrincipal())
            return try LISARoutes.encode(["deleted": deleted])
        }
        group.get("/session/{id}") { _, context in
            try LISARoutes.encode(try await sessions.session(try context.parameters.require("id"), of: try context.requirePrincipal()))
        }
        group.put("/session/{id}") { request, context in
            let save = try RequestJSON.decode(SaveRequest.self, from: try await body(request))
            return try LISARoutes.encode(
                try await sessions.save(
                    try context.parameters.require("id"), history: save.history ?? save.messages ?? .array([]),
                    configuration: save.configuration, name: save.name, of: try context.requirePrincipal()
                )
            )
        }
        group.put("/session/{id}/name") { request, context in
            let rename = try RequestJSON.decode(RenameRequest.self, from: try await body(request))
            return try LISARoutes.encode(
                try await sessions.rename(try context.parameters.require("id"), to: rename.name, of: try context.requirePrincipal())
            )
        }
        group.delete("/session/{id}") { _, context in
            let id = try context.parameters.require("id")
            try await sessions.delete(id, of: try context.requirePrincipal())
            return try LISARoutes.encode(["sessionId": id, "deleted": "true"])
        }

        group.get("/prompt-templates") { _, context in
            try LISARoutes.encode(["Items": try await sessions.templates(for: try context.requirePrincipal())])
        }
        group.post("/prompt-templates") { request, context in
            let input = try RequestJSON.decode(SessionService.TemplateInput.self, from: try await body(request))
            return try LISARoutes.encode(try await sessions.createTemplate(input, by: try context.requirePrincipal()), status: .created)
        }
        group.get("/prompt-templates/{id}") { _, context in
            try LISARoutes.encode(try await sessions.template(try context.parameters.require("id"), for: try context.requirePrincipal()))
        }
        group.get("/prompt-templates/{id}/revisions") { _, context in
            try LISARoutes.encode(try await sessions.revisions(of: try context.parameters.require("id"), for: try context.requirePrincipal()))
        }
        group.put("/prompt-templates/{id}") { request, context in
            let input = try RequestJSON.decode(SessionService.TemplateInput.self, from: try await body(request))
            return try LISARoutes.encode(
                try await sessions.updateTemplate(try context.parameters.require("id"), with: input, by: try context.requirePrincipal())
            )
        }
        group.delete("/prompt-templates/{id}") { _, context in
            let id = try context.parameters.require("id")
            try await sessions.deleteTemplate(id, by: try context.requirePrincipal())
            return try LISARoutes.encode(["id": id, "deleted": "true"])
        }
    }

    private func body(_ request: Request) async throws -> ByteBuffer {
        try await LISARoutes.collectJSON(request, limit: maxRequestBodySize)
    }
}
