/**
 * `GET /openapi.json`: the OpenAPI 3.1 document of every mounted route, generated from the
 * routes' own zod schemas (zod's JSON Schema output, which OpenAPI 3.1 takes as it is).
 * @module
 */
import { z } from "zod";
import { contractRegistry, errorSchema } from "./contract.js";
import { type RouteGroup, type Router, route } from "./router.js";

type JsonSchema = Record<string, unknown>;

/** Converts one schema, moving the named schemas it uses into `components` and pointing at them there. */
function convert(schema: z.ZodType, components: Record<string, JsonSchema>): JsonSchema {
  const {
    $schema: _,
    $defs,
    ...rest
  } = z.toJSONSchema(schema, {
    metadata: contractRegistry,
    unrepresentable: "any",
    io: "input",
  }) as JsonSchema & { $defs?: Record<string, JsonSchema> };
  const relink = (value: JsonSchema) =>
    JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema;
  for (const [id, def] of Object.entries($defs ?? {})) components[id] = relink(def);
  // A named schema comes back as a reference to its own definition, already among the components.
  return relink(rest);
}

/** The OpenAPI document of `router`'s routes. */
export function openApiDocument(router: Router, info: { title: string; version: string }): JsonSchema {
  const components: Record<string, JsonSchema> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of router.routes) {
    const parameters = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(r.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.schema
          ? { content: { "application/json": { schema: convert(response.schema, components) } } }
          : {}),
      };
    }
    if (!r.public) {
      responses["401"] ??= {
        description: "Missing or wrong bearer token (when the server requires one).",
        content: { "application/json": { schema: convert(errorSchema, components) } },
      };
    }
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(r.body
        ? {
            requestBody: {
              required: r.body.required,
              content: { "application/json": { schema: convert(r.body.schema, components) } },
            },
          }
        : {}),
      responses,
      ...(r.public ? { security: [] } : {}),
    };
  }
  return {
    openapi: "3.1.0",
    info,
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
  };
}

/** The route that serves the document (built once, on first request, from every mounted route). */
export function openApiRoutes(document: () => JsonSchema): RouteGroup {
  let built: JsonSchema | undefined;
  return [
    route({
      method: "GET",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This document.",
      responses: { 200: { description: "The OpenAPI 3.1 document of this server." } },
      handle: () => ({ status: 200, body: (built ??= document()) }),
    }),
  ];
}
