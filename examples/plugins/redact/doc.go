// Command redact is a sluice plugin masking personal data in record values:
// email addresses, phone numbers and payment card numbers.
//
//	stages:
//	  redact:
//	    type: plugin
//	    plugin: redact
//	    inputs: [users]
//	    config:
//	      fields: [email, note]   # default: every string of the value
//	      mask: "*"               # default "*"; one character, not a letter or digit
//
// What is masked, every character of the match replaced by the mask:
//
//   - card numbers: 13 to 19 digits, optionally grouped by single spaces or
//     dashes, that pass the Luhn check; the last 4 digits and the
//     separators stay ("**** **** **** 1111");
//   - email addresses: everything but the "@";
//   - phone numbers: an international number (+ then 7 to 15 digits, with
//     spaces, dots, dashes or parentheses) or a North American one
//     ("(555) 123-4567", "555-123-4567", "555.123.4567"); the digits are
//     masked, "+" and the punctuation stay. Dates and plain numbers are left
//     alone on purpose.
//
// JSON values are walked: strings are redacted wherever they are, or, with
// `fields`, only the strings under those member names (at any depth; an
// entry with dots, like "user.email", names a path from the top); arrays
// and objects under a selected name are redacted whole. Keys, numbers and
// member order are kept (a value with something masked is re-encoded
// compactly; one with nothing to mask passes byte for byte). Numbers inside
// a JSON document are left alone. Any other value (text, or a bare number,
// which may be a card number) is redacted as raw text. Keys and headers
// are not touched.
package main
