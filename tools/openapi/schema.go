package openapi

import (
	"regexp"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// maxSchemaDepth bounds how deep a converted schema nests: a schema that
// refers to itself ($ref cycles, kin-openapi gives them as pointer cycles)
// stops once it appeared jsonSchema.repeat times on a path, and any path at
// this depth.
const maxSchemaDepth = 16

// recursive describes what stands for a schema met again within itself,
// or too deep: any value, which the API checks.
const recursive = "(nested deeper: any value, checked by the API)"

// jsonSchema converts OpenAPI schemas (3.0's dialect or 3.1's JSON Schema
// 2020-12) into self-contained JSON Schema 2020-12, every $ref inlined, for
// a tool's input schema. Keywords without a JSON Schema meaning (3.0's
// nullable, boolean exclusive bounds) become their JSON Schema forms, and
// a oneOf with a discriminator (beside it, or in each branch, inherited
// through allOf: discriminated) an anyOf (the discriminator chooses);
// annotations tools need not (examples, xml, discriminator) are left out,
// and so are patterns Go's regexp cannot compile (the API checks them).
type jsonSchema struct {
	stack []*openapi3.Schema
	// request leaves readOnly properties out: a request does not send them.
	request bool
	// repeat is how many times a schema may appear on one path (at least 1).
	repeat int
	// limit bounds size, a lower bound of the JSON made so far: past it
	// the conversion stops (every schema then converts to {}) and over
	// says so, for a schema whose $refs would inline into millions of
	// nodes is refused before it is built. Zero is no limit.
	limit, size int
}

// over reports whether the conversion passed its limit.
func (c *jsonSchema) over() bool { return c.limit > 0 && c.size > c.limit }

// count adds what a converted schema's keywords and names will take in
// JSON at least.
func (c *jsonSchema) count(s *openapi3.Schema) {
	c.size += 2 + len(s.Title) + len(s.Description) + len(s.Format) + len(s.Pattern)
	for _, e := range s.Enum {
		c.size += 2
		if str, ok := e.(string); ok {
			c.size += len(str)
		}
	}
	for name := range s.Properties {
		c.size += len(name) + 4
	}
	for _, name := range s.Required {
		c.size += len(name) + 3
	}
}

func (c *jsonSchema) ref(sr *openapi3.SchemaRef) map[string]any {
	if sr == nil || sr.Value == nil {
		return map[string]any{}
	}
	return c.schema(sr.Value)
}

func (c *jsonSchema) refs(srs openapi3.SchemaRefs) []any {
	out := make([]any, 0, len(srs))
	for _, sr := range srs {
		out = append(out, c.ref(sr))
	}
	return out
}

func (c *jsonSchema) schema(s *openapi3.Schema) map[string]any {
	if s.Always != nil {
		if *s.Always {
			return map[string]any{}
		}
		return map[string]any{"not": map[string]any{}}
	}
	if c.over() {
		return map[string]any{}
	}
	c.count(s)
	seen := 0
	for _, on := range c.stack {
		if on == s {
			seen++
		}
	}
	if seen >= max(c.repeat, 1) || len(c.stack) >= maxSchemaDepth {
		return map[string]any{"description": recursive}
	}
	c.stack = append(c.stack, s)
	defer func() { c.stack = c.stack[:len(c.stack)-1] }()

	out := map[string]any{}
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	types := slices.Clone(s.Type.Slice())
	if s.Nullable && len(types) > 0 && !slices.Contains(types, "null") {
		types = append(types, "null")
	}
	switch len(types) {
	case 0:
	case 1:
		out["type"] = types[0]
	default:
		out["type"] = types
	}
	set("title", s.Title, s.Title != "")
	set("description", s.Description, s.Description != "")
	set("format", s.Format, s.Format != "")
	set("enum", s.Enum, len(s.Enum) > 0)
	set("const", s.Const, s.Const != nil)
	set("default", s.Default, s.Default != nil)
	set("deprecated", true, s.Deprecated)
	set("readOnly", true, s.ReadOnly)
	set("writeOnly", true, s.WriteOnly)

	setPtr(out, "minimum", s.Min)
	setPtr(out, "maximum", s.Max)
	setPtr(out, "multipleOf", s.MultipleOf)
	if b := s.ExclusiveMin; b.Value != nil {
		out["exclusiveMinimum"] = *b.Value
	} else if b.Bool != nil && *b.Bool && s.Min != nil {
		delete(out, "minimum")
		out["exclusiveMinimum"] = *s.Min
	}
	if b := s.ExclusiveMax; b.Value != nil {
		out["exclusiveMaximum"] = *b.Value
	} else if b.Bool != nil && *b.Bool && s.Max != nil {
		delete(out, "maximum")
		out["exclusiveMaximum"] = *s.Max
	}

	set("minLength", s.MinLength, s.MinLength > 0)
	setPtr(out, "maxLength", s.MaxLength)
	set("pattern", s.Pattern, s.Pattern != "" && compiles(s.Pattern))

	set("minItems", s.MinItems, s.MinItems > 0)
	setPtr(out, "maxItems", s.MaxItems)
	set("uniqueItems", true, s.UniqueItems)
	if s.Items != nil {
		out["items"] = c.ref(s.Items)
	}
	set("prefixItems", c.refs(s.PrefixItems), len(s.PrefixItems) > 0)
	if s.Contains != nil {
		out["contains"] = c.ref(s.Contains)
	}
	setPtr(out, "minContains", s.MinContains)
	setPtr(out, "maxContains", s.MaxContains)

	if len(s.Properties) > 0 {
		props := map[string]any{}
		for name, p := range s.Properties {
			if c.request && p != nil && p.Value != nil && p.Value.ReadOnly {
				continue
			}
			props[name] = c.ref(p)
		}
		out["properties"] = props
	}
	var required []string
	for _, name := range s.Required {
		if p := s.Properties[name]; c.request && p != nil && p.Value != nil && p.Value.ReadOnly {
			continue
		}
		required = append(required, name)
	}
	set("required", required, len(required) > 0)
	if ap := s.AdditionalProperties; ap.Has != nil {
		out["additionalProperties"] = *ap.Has
	} else if ap.Schema != nil {
		out["additionalProperties"] = c.ref(ap.Schema)
	}
	if len(s.PatternProperties) > 0 {
		pp := map[string]any{}
		for re, p := range s.PatternProperties {
			if compiles(re) {
				pp[re] = c.ref(p)
			}
		}
		set("patternProperties", pp, len(pp) > 0)
	}
	if s.PropertyNames != nil {
		out["propertyNames"] = c.ref(s.PropertyNames)
	}
	set("minProperties", s.MinProps, s.MinProps > 0)
	setPtr(out, "maxProperties", s.MaxProps)
	set("dependentRequired", s.DependentRequired, len(s.DependentRequired) > 0)

	set("allOf", c.refs(s.AllOf), len(s.AllOf) > 0)
	set("anyOf", c.refs(s.AnyOf), len(s.AnyOf) > 0)
	if len(s.AnyOf) == 0 && (s.Discriminator != nil || discriminated(s.OneOf)) {
		// The discriminator's value chooses the one branch, as the API
		// reads it: a value that fits another branch too (branches
		// rarely forbid each other's properties) is no refusal.
		set("anyOf", c.refs(s.OneOf), len(s.OneOf) > 0)
	} else {
		set("oneOf", c.refs(s.OneOf), len(s.OneOf) > 0)
	}
	if s.Not != nil {
		out["not"] = c.ref(s.Not)
	}
	if s.If != nil {
		out["if"] = c.ref(s.If)
		if s.Then != nil {
			out["then"] = c.ref(s.Then)
		}
		if s.Else != nil {
			out["else"] = c.ref(s.Else)
		}
	}
	return out
}

// discriminated reports whether every branch of a oneOf holds a
// discriminator of the same property, its own or one inherited through
// allOf (a parent's: Cat is allOf Pet, and Pet holds it, as springdoc and
// NSwag write polymorphism): that property's value chooses the branch, as
// a discriminator beside the oneOf does.
func discriminated(branches openapi3.SchemaRefs) bool {
	prop := ""
	for _, b := range branches {
		p := discriminatorOf(b, map[*openapi3.Schema]bool{})
		if p == "" || prop != "" && p != prop {
			return false
		}
		prop = p
	}
	return prop != ""
}

// discriminatorOf is the property of the discriminator a schema holds or
// inherits through allOf, "" when none; each schema is looked at once
// (seen), however the allOfs refer to each other.
func discriminatorOf(sr *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) string {
	if sr == nil || sr.Value == nil || seen[sr.Value] {
		return ""
	}
	seen[sr.Value] = true
	if d := sr.Value.Discriminator; d != nil {
		return d.PropertyName
	}
	for _, parent := range sr.Value.AllOf {
		if p := discriminatorOf(parent, seen); p != "" {
			return p
		}
	}
	return ""
}

// setPtr sets out[k] to *p when p is set.
func setPtr[T any](out map[string]any, k string, p *T) {
	if p != nil {
		out[k] = *p
	}
}

// compiles reports whether Go's regexp accepts an ECMAScript pattern; the
// validator of arguments uses Go's.
func compiles(pattern string) bool {
	_, err := regexp.Compile(pattern)
	return err == nil
}
