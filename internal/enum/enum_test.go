package enum

import "testing"

type color string

func TestParse(t *testing.T) {
	allowed := []color{"red", "green"}
	if c, err := Parse("green", allowed); err != nil || c != "green" {
		t.Fatalf("Parse(green) = %q, %v", c, err)
	}
	_, err := Parse("blue", allowed)
	if err == nil || err.Error() != `"blue": want one of red, green` {
		t.Fatalf("Parse(blue) error = %v", err)
	}
}
