import { Type, type TSchema } from '@sinclair/typebox';

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

/** Response schema of an envelope; the serializer drops any field the schema does not name. */
export function EnvelopeSchema<T extends TSchema>(data: T, extra: Record<string, TSchema> = {}) {
  return Type.Object({
    status: Type.Boolean(),
    code: Type.Integer(),
    message: Type.String(),
    data: Type.Union([data, Type.Null()]),
    ...extra,
  });
}

export const ErrorEnvelopeSchema = Type.Object(
  {
    status: Type.Literal(false),
    code: Type.Integer(),
    message: Type.String(),
    data: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  },
  { description: 'Error envelope; validation errors list problems in data.errors' },
);
