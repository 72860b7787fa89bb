#!/bin/bash
#
# mutants.sh - prove the unit tests can fail: break one rule of the core at
# a time (in a copy of core/, never in the work tree), build the tests
# against the broken copy and run them.  A mutant marked "sim" must be
# caught by the simulation (test_sim); one marked "unit" breaks a defensive
# rule that a correct cluster never exercises (e.g. a learn that conflicts
# can only follow another bug), so a unit test must catch it.  The script
# says which tests caught each mutant and exits non-zero if one survives.
#
# Usage: tests/unit/mutants.sh [name...]     (default: all mutants)
#
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
core=$(cd "$here/../../core" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name | sim/unit | file | perl substitution (-0: may span lines) | what it breaks
MUTANTS=(
	'accept-below-promise|sim|acceptor.c|s/ballot_valid\(b\) && px_ballot_cmp\(b, &st->promised\) >= 0/ballot_valid(b)/|acceptor accepts a ballot below its promise'
	'promise-not-strict|sim|acceptor.c|s/px_ballot_cmp\(b, &st->promised\) > 0;/px_ballot_cmp(b, &st->promised) >= 0;/|acceptor promises a ballot equal to its promise again'
	'promise-hides-accepted|sim|acceptor.c|s/out->has_accepted = st->has_accepted;/out->has_accepted = false;/|phase 1b does not report the accepted value'
	'accept-keeps-old-promise|sim|acceptor.c|s/st->promised = \*b;\n(\s*)st->has_accepted = true;/$1st->has_accepted = true;/|accepting a higher ballot does not raise the promise'
	'decided-not-frozen|sim|acceptor.c|s/if \(st->decided\)\n\t\{\n\t\tout->accepted/if (0)\n\t{\n\t\tout->accepted/|a decided round accepts new values'
	'learn-overwrites|unit|acceptor.c|s/if \(st->decided\)\n\t\treturn false;\n\n\tst->has_accepted = true;/st->has_accepted = true;/|learn overwrites a decided value'
	'adopt-any-ballot|sim|proposer.c|s/if \(cmp > 0 && p->acks < p->quorum\)/if (cmp != 0 \&\& p->acks < p->quorum)/|proposer adopts the last accepted value, not the highest'
	'ignore-adopted|sim|proposer.c|s/p->proposal = r->value;\n\t\t\tp->adopted_acks = 1;/p->adopted_acks = 1;/|proposer proposes its own value despite an accepted one'
	'count-duplicates|sim|proposer.c|s/if \(p->responded & bit\)\n\t\treturn phase_status\(p\);\n\tif \(r->accepted &&/if (r->accepted \&\&/|phase 2b answers of one host are counted twice'
	'quorum-minority|sim|proposer.c|s/p->quorum = n_hosts \/ 2 \+ 1;/p->quorum = n_hosts \/ 2;/|a quorum is half the hosts, not a majority'
	'accept-stale-promise|sim|proposer.c|s/if \(r->promised && px_ballot_cmp\(&r->promised_ballot, &p->ballot\) != 0\)\n\t\treturn phase_status\(p\);//|promises of an older ballot count for the current one'
	'retry-same-number|sim|proposer.c|s/if \(next < INT64_MAX\)\n\t\tnext\+\+;//|retry does not raise the ballot number'
	'standing-ignored|sim|acceptor.c|s/if \(px_ballot_cmp\(&s->ballot, &st->promised\) > 0\)\n\t\tst->promised = s->ballot;//|a standing promise does not bind the rounds it covers'
	'standing-moves-up|sim|acceptor.c|s/if \(!s->valid \x7c\x7c round < s->from_round\)/if (1)/|a new standing promise drops the rounds the old one covered'
	'standing-same-ballot|unit|acceptor.c|s/px_ballot_cmp\(b, &s->ballot\) <= 0/px_ballot_cmp(b, \&s->ballot) < 0/|a standing promise is granted twice to one ballot'
	'no-noop-rounds|sim|log.c|s/if \(!bit_get\(log, r\)\)\n\t\t\treturn r;//|holes of the log are never filled'
)

selected=("$@")
survivors=0
for m in "${MUTANTS[@]}"; do
	IFS='|' read -r name kind file expr what <<<"$m"
	if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " =~ " $name " ]]; then
		continue
	fi
	rm -rf "$tmp/core" "$tmp/build"
	cp -r "$core" "$tmp/core"
	rm -rf "$tmp/core/build"
	perl -0pi -e "$expr" "$tmp/core/$file"
	if cmp -s "$core/$file" "$tmp/core/$file"; then
		echo "mutant $name: the substitution matched nothing in core/$file" >&2
		survivors=$((survivors + 1))
		continue
	fi
	if ! make -s -C "$here" BUILD="$tmp/build" CORE_DIR="$tmp/core" all >"$tmp/build.log" 2>&1; then
		echo "mutant $name: does not build" >&2
		cat "$tmp/build.log" >&2
		survivors=$((survivors + 1))
		continue
	fi
	caught=()
	for t in test_acceptor test_proposer test_log test_sim; do
		if ! timeout 300 "$tmp/build/$t" >"$tmp/$t.log" 2>&1; then
			caught+=("$t")
		fi
	done
	reason=$(grep -h -m1 -E 'seed [0-9]+:|nodes, seed' "$tmp/test_sim.log" | sed 's/^ *//' | cut -c1-150)
	if [[ " ${caught[*]} " =~ " test_sim " ]] || { [ "$kind" = unit ] && [ ${#caught[@]} -gt 0 ]; }; then
		echo "CAUGHT  $name ($what) by: ${caught[*]}"
		[ -n "$reason" ] && echo "        $reason"
	else
		echo "MISSED  $name ($what); caught only by: ${caught[*]:-nothing}"
		survivors=$((survivors + 1))
	fi
done

if [ $survivors -ne 0 ]; then
	echo "mutants: $survivors survived"
	exit 1
fi
echo "mutants: all caught"
