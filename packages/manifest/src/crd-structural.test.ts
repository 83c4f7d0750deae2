import { describe, expect, it } from 'vitest';
import { toStructural } from './crd.js';

// toStructural node by node: what Kubernetes' structural-schema rules make of each JSON Schema construct zod emits.

describe('toStructural', () => {
  it('gives an empty schema for what is not a schema object', () => {
    expect(toStructural(null)).toEqual({});
    expect(toStructural('string')).toEqual({});
    expect(toStructural(1)).toEqual({});
  });

  it('drops $schema, propertyNames and id, and keeps the rest of a typed node', () => {
    expect(toStructural({ $schema: 'x', id: 'y', propertyNames: { type: 'string' }, type: 'string', minLength: 1, description: 'd' })).toEqual({ type: 'string', minLength: 1, description: 'd' });
  });

  it('reduces an int-or-string node to the marker and its description', () => {
    expect(toStructural({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'string' }, { type: 'number' }], description: 'q' })).toEqual({ 'x-kubernetes-int-or-string': true, description: 'q' });
    expect(toStructural({ 'x-kubernetes-int-or-string': true, anyOf: [] })).toEqual({ 'x-kubernetes-int-or-string': true });
    expect(toStructural({ 'x-kubernetes-int-or-string': 'yes', type: 'string' })).toEqual({ 'x-kubernetes-int-or-string': 'yes', type: 'string' });
  });

  it('makes a preserve-unknown-fields node an object, keeping its properties (structural), required and description', () => {
    expect(toStructural({ 'x-kubernetes-preserve-unknown-fields': true, type: 'object', additionalProperties: {}, properties: { name: { type: 'string', $schema: 'x' } }, required: ['name'], description: 'v' })).toEqual({
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      properties: { name: { type: 'string' } },
      required: ['name'],
      description: 'v',
    });
    expect(toStructural({ 'x-kubernetes-preserve-unknown-fields': true, additionalProperties: {} })).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    expect(toStructural({ 'x-kubernetes-preserve-unknown-fields': true, required: 'name', description: 1 })).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
  });

  it('turns const into a one-value enum', () => {
    expect(toStructural({ type: 'string', const: 'docker' })).toEqual({ type: 'string', enum: ['docker'] });
  });

  it('writes exclusive bounds the OpenAPI v3 way', () => {
    expect(toStructural({ type: 'number', exclusiveMinimum: 0 })).toEqual({ type: 'number', minimum: 0, exclusiveMinimum: true });
    expect(toStructural({ type: 'number', exclusiveMaximum: 10 })).toEqual({ type: 'number', maximum: 10, exclusiveMaximum: true });
    expect(toStructural({ type: 'number', exclusiveMinimum: true, minimum: 1 })).toEqual({ type: 'number', exclusiveMinimum: true, minimum: 1 });
  });

  it('drops additionalProperties: false, makes a map\'s value schema structural, and keeps properties over a map', () => {
    expect(toStructural({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false })).toEqual({ type: 'object', properties: { a: { type: 'string' } } });
    expect(toStructural({ type: 'object', additionalProperties: { type: 'string', $schema: 'x' } })).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(toStructural({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } })).toEqual({ type: 'object', properties: { a: { type: 'string' } } });
    expect(toStructural({ type: 'object', additionalProperties: true })).toEqual({ type: 'object', additionalProperties: true });
  });

  it('makes array items structural', () => {
    expect(toStructural({ type: 'array', items: { const: 'a', type: 'string' } })).toEqual({ type: 'array', items: { type: 'string', enum: ['a'] } });
  });

  it('drops an integer maximum beyond what JavaScript numbers hold exactly, and keeps smaller ones', () => {
    expect(toStructural({ type: 'integer', maximum: Number.MAX_SAFE_INTEGER + 2 })).toEqual({ type: 'integer' });
    expect(toStructural({ type: 'integer', maximum: Number.MAX_SAFE_INTEGER })).toEqual({ type: 'integer', maximum: Number.MAX_SAFE_INTEGER });
    expect(toStructural({ type: 'number', maximum: Number.MAX_SAFE_INTEGER + 2 })).toEqual({ type: 'number', maximum: Number.MAX_SAFE_INTEGER + 2 });
  });

  it('gives every node a type: object when it has properties or a map, else preserve-unknown-fields', () => {
    expect(toStructural({ properties: { a: { type: 'string' } } })).toEqual({ type: 'object', properties: { a: { type: 'string' } } });
    expect(toStructural({ additionalProperties: { type: 'string' } })).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(toStructural({ anyOf: [{ type: 'string' }, { type: 'number' }] })).toEqual({ 'x-kubernetes-preserve-unknown-fields': true });
    expect(toStructural({})).toEqual({ 'x-kubernetes-preserve-unknown-fields': true });
  });
});
