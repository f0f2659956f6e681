package main

import "regexp"

var (
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// International (+ and 7 to 15 digits) or North American shapes only:
	// looser patterns would mask dates, amounts and identifiers.
	phoneRe = regexp.MustCompile(`\+\d(?:[ .()-]{0,2}\d){6,14}|(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}`)
)

// Card numbers are 13 to 19 digits; the last 4 stay readable.
const (
	cardMinDigits = 13
	cardMaxDigits = 19
	cardKeep      = 4
	// groupMin: a number written in groups is taken for a card only if
	// every group has at least this many digits (cards are grouped 4-4-4-4,
	// 4-6-5, ...), so that lists of small numbers are not.
	groupMin = 3
)

// redactText masks the card numbers, email addresses and phone numbers in
// b. It returns b itself when nothing was found.
func redactText(b, mask []byte) ([]byte, bool) {
	var masked []bool // per byte of b; allocated at the first find
	mark := func(i int) {
		if masked == nil {
			masked = make([]bool, len(b))
		}
		masked[i] = true
	}
	overlaps := func(from, to int) bool {
		for i := from; masked != nil && i < to; i++ {
			if masked[i] {
				return true
			}
		}
		return false
	}
	findCards(b, func(digits []int) {
		for _, i := range digits[:len(digits)-cardKeep] {
			mark(i)
		}
	})
	for _, m := range emailRe.FindAllIndex(b, -1) {
		for i := m[0]; i < m[1]; i++ {
			if b[i] != '@' {
				mark(i)
			}
		}
	}
	for _, m := range phoneRe.FindAllIndex(b, -1) {
		if (m[0] > 0 && isWordByte(b[m[0]-1])) || (m[1] < len(b) && isWordByte(b[m[1]])) || overlaps(m[0], m[1]) {
			continue
		}
		for i := m[0]; i < m[1]; i++ {
			if isDigit(b[i]) {
				mark(i)
			}
		}
	}
	if masked == nil {
		return b, false
	}
	out := make([]byte, 0, len(b)+len(b)*(len(mask)-1))
	for i, c := range b {
		if masked[i] {
			out = append(out, mask...)
		} else {
			out = append(out, c)
		}
	}
	return out, true
}

// findCards calls found with the byte positions of the digits of every
// card number in b: a run of 13 to 19 digits, alone or in groups separated
// by one space or dash, that passes the Luhn check. Within a longer run of
// groups (a card number followed by an expiry or a code), the longest
// leftmost span of groups that is a card number counts.
func findCards(b []byte, found func(digits []int)) {
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		groups, end := digitGroups(b, i)
		i = end
		for a := 0; a < len(groups); a++ {
			for z := len(groups); z > a; z-- {
				span := groups[a:z]
				if len(span) > 1 && !allAtLeast(span, groupMin) {
					continue
				}
				digits := positions(span)
				if len(digits) >= cardMinDigits && len(digits) <= cardMaxDigits && luhn(b, digits) {
					found(digits)
					a = z - 1
					break
				}
			}
		}
	}
}

type group struct{ from, to int }

// digitGroups reads the run of digit groups starting at b[i], a digit.
func digitGroups(b []byte, i int) ([]group, int) {
	var groups []group
	for {
		from := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		groups = append(groups, group{from, i})
		if i+1 < len(b) && (b[i] == ' ' || b[i] == '-') && isDigit(b[i+1]) {
			i++
			continue
		}
		return groups, i
	}
}

func allAtLeast(gs []group, n int) bool {
	for _, g := range gs {
		if g.to-g.from < n {
			return false
		}
	}
	return true
}

func positions(gs []group) []int {
	var ps []int
	for _, g := range gs {
		for i := g.from; i < g.to; i++ {
			ps = append(ps, i)
		}
	}
	return ps
}

// luhn checks the digits at positions of b against the Luhn checksum.
func luhn(b []byte, positions []int) bool {
	sum := 0
	for k := range positions {
		d := int(b[positions[len(positions)-1-k]] - '0')
		if k%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '+'
}
