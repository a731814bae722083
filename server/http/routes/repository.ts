// The Open Inference Protocol's model repository extension, as Triton serves it (with
// --model-control explicit): the index of every model folder and its state, and a model loaded (or
// reloaded: the new version beside the old, nothing lost; engine/repository.ts) or unloaded while
// serving. Registered inside the /v2 routes, so its errors have their shape ({ "error": … }).
//
// These routes change what the server serves, so they take their own token (--admin-token, as
// `Authorization: Bearer <token>`); without one they answer only requests from this machine.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Errors } from '../../errors.js';
import { bearerMatches, isLoopback } from '../../auth.js';

export async function repositoryRoutes(app: FastifyInstance): Promise<void> {
  const ctx = app.vitrine;
  const token = ctx.config.adminToken;

  const guard = async (request: FastifyRequest) => {
    if (token === null) {
      if (!isLoopback(request.socket.remoteAddress))
        throw Errors.forbidden('the repository routes answer only this machine without --admin-token; set one to manage models remotely');
      return;
    }
    if (!bearerMatches(request.headers.authorization, token))
      throw Errors.unauthorized('the repository routes need Authorization: Bearer <the admin token>');
  };

  const Params = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) });
  const Entry = Type.Object({ name: Type.String(), version: Type.String(), state: Type.String(), reason: Type.String() });

  app.post(
    '/v2/repository/index',
    {
      onRequest: guard,
      schema: {
        summary: 'Model repository: every model folder, its version and state (READY, LOADING, UNLOADING, UNAVAILABLE)',
        tags: ['v2'],
        response: { 200: Type.Array(Entry) },
      },
    },
    async () => ctx.repository.index(),
  );
  app.post<{ Params: { name: string } }>(
    '/v2/repository/models/:name/load',
    {
      onRequest: guard,
      schema: {
        summary: 'Model repository: load a model, or reload it (the new version answers once it has run; the old finishes its work)',
        tags: ['v2'],
        params: Params,
      },
    },
    async (request) => {
      await ctx.repository.load(request.params.name);
      return {};
    },
  );
  app.post<{ Params: { name: string } }>(
    '/v2/repository/models/:name/unload',
    {
      onRequest: guard,
      schema: {
        summary: 'Model repository: unload a model (new requests for it get 404; its sessions go once its work is answered)',
        tags: ['v2'],
        params: Params,
      },
    },
    async (request) => {
      await ctx.repository.unload(request.params.name);
      return {};
    },
  );
}
