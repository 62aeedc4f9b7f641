import { Type, TypeGuard, type ObjectOptions, type Static, type TNull, type TSchema, type TUnion } from '@sinclair/typebox';

/** The seed's answer shape: every JSON answer but a few named in the contract uses it. */
export interface Envelope<T = unknown> {
  status: boolean;
  code: number;
  message: string;
  data: T | null;
}

export function envelope<T>(code: number, message: string, data: T | null = null): Envelope<T> {
  return { status: code < 400, code, message, data };
}

/**
 * Response schema of an envelope; the serializer drops any field the schema does not name.
 * `options` carries the response's description and examples into the OpenAPI document.
 */
export function EnvelopeSchema<T extends TSchema>(data: T, extra: Record<string, TSchema> = {}, options: ObjectOptions = {}) {
  // data: null alone, not null-or-null, which OpenAPI linters flag as a duplicated anyOf branch.
  const nullable = (TypeGuard.IsNull(data) ? data : Type.Union([data, Type.Null()])) as TUnion<[T, TNull]>;
  return Type.Object(
    {
      status: Type.Boolean({ description: 'true below 400, false on errors' }),
      code: Type.Integer({ description: 'Always the HTTP status' }),
      message: Type.String(),
      data: nullable,
      ...extra,
    },
    options,
  );
}

export const FieldErrorSchema = Type.Object({ field: Type.String(), message: Type.String() });

export const ErrorEnvelopeSchema = Type.Object(
  {
    status: Type.Literal(false),
    code: Type.Integer({ description: 'Always the HTTP status' }),
    message: Type.String(),
    data: Type.Union([
      Type.Object({ errors: Type.Optional(Type.Array(FieldErrorSchema, { description: 'What was wrong with the request, field by field (400)' })) }, { additionalProperties: true }),
      Type.Null(),
    ]),
  },
  { description: 'Error envelope; validation errors list problems in data.errors' },
);

/** The id under which http/openapi.ts shares ErrorEnvelopeSchema: one `ErrorEnvelope` component in the document. */
export const ERROR_ENVELOPE_ID = 'ErrorEnvelope';

/** An error answer of a route: the shared error envelope, with what this answer means. */
export function ErrorResponse(description: string) {
  return Type.Unsafe<Static<typeof ErrorEnvelopeSchema>>({ $ref: `${ERROR_ENVELOPE_ID}#`, description });
}
