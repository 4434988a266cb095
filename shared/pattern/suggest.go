package pattern

import "strings"

// closest returns the candidate nearest to name by edit distance, ignoring
// case, when it is near enough to be a likely typo: at most a third of the
// candidate's length (and at least 2) edits away.
func closest(name string, candidates []string) (string, bool) {
	best, bestDist := "", -1
	lname := strings.ToLower(name)
	for _, cand := range candidates {
		d := levenshtein(lname, strings.ToLower(cand))
		limit := max(2, len([]rune(cand))/3)
		if d > limit || d >= len([]rune(name)) { // every character changed: not a typo
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = cand, d
		}
	}
	return best, bestDist >= 0
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
