--
-- acceptor: the RPCs of phase 1b (prepare), phase 2b (accept) and learn,
-- called directly on a one-node group.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_paxos;
RESET client_min_messages;

SELECT format('host=127.0.0.1 port=%s dbname=%s user=postgres',
              current_setting('port'), current_database()) AS self \gset
SELECT paxos_create_group('acc', :'self');

-- a fresh round: promise, nothing accepted; max_round counts accepted rounds
SELECT promised, proposer_id, min_proposal_num, value_id, accepted_proposal_num,
       consensus, max_round_num, config_round
FROM paxos_request_prepare('p/b', 'acc', 1, 5);

-- a lower ballot, or the same one again, is refused with the promise held
SELECT promised, proposer_id, min_proposal_num FROM paxos_request_prepare('p/a', 'acc', 1, 4);
SELECT promised, proposer_id, min_proposal_num FROM paxos_request_prepare('p/b', 'acc', 1, 5);
-- at equal numbers the proposer id decides: p/a < p/b < p/c
SELECT promised, proposer_id, min_proposal_num FROM paxos_request_prepare('p/a', 'acc', 1, 5);
SELECT promised, proposer_id, min_proposal_num FROM paxos_request_prepare('p/c', 'acc', 1, 5);

-- accept below the promise is refused; at the promise it is accepted
SELECT accepted, min_proposal_num, proposer_id, consensus
FROM paxos_request_accept('p/a', 'acc', 1, 4, 'val-a', 'A');
SELECT accepted, min_proposal_num, proposer_id, consensus
FROM paxos_request_accept('p/b', 'acc', 1, 5, 'val-a', 'A');
SELECT accepted, min_proposal_num, proposer_id, consensus
FROM paxos_request_accept('p/c', 'acc', 1, 5, 'val-b', 'B');

-- a later prepare learns the accepted value
SELECT promised, min_proposal_num, value_id, value, accepted_proposal_num,
       accepted_proposer_id, consensus, max_round_num
FROM paxos_request_prepare('p/c', 'acc', 1, 7);

-- accept with prepare_next_round also promises the next round
SELECT accepted, next_promised, next_proposer_id, next_min_proposal_num, next_value_id
FROM paxos_request_accept('p/c', 'acc', 1, 7, 'val-b', 'B', NULL, NULL, true);
SELECT round_num, min_proposal_num, proposer_id, value_id, consensus
FROM pgp_metadata.round WHERE group_id = 'acc' ORDER BY round_num;

-- a learn piggybacked on the next request marks the round decided
SELECT promised FROM paxos_request_prepare('p/c', 'acc', 2, 8, 1, 7);
SELECT round_num, value, accepted_proposal_num, accepted_proposer_id, consensus
FROM pgp_metadata.round WHERE group_id = 'acc' AND round_num = 1;

-- a decided round never changes: prepare and accept answer with its value
SELECT promised, value, consensus FROM paxos_request_prepare('p/z', 'acc', 1, 100);
SELECT accepted, consensus, value_id, value, accepted_proposal_num
FROM paxos_request_accept('p/z', 'acc', 1, 100, 'val-z', 'Z');

-- the same value accepted again under a higher ballot (a proposer that
-- found it in phase 1): the acceptor now reports that ballot, which later
-- proposers compare with other acceptors' (it is stored even though the
-- value, which is not sent again to storage, did not change)
SELECT accepted FROM paxos_request_accept('p/a', 'acc', 5, 10, 'val-s', 'S');
SELECT promised, value_id, accepted_proposal_num, accepted_proposer_id
FROM paxos_request_prepare('p/b', 'acc', 5, 20);
SELECT accepted FROM paxos_request_accept('p/b', 'acc', 5, 20, 'val-s', 'S');
SELECT promised, value_id, value, accepted_proposal_num, accepted_proposer_id
FROM paxos_request_prepare('p/c', 'acc', 5, 30);
-- learning it keeps the value and the ballot, and marks it decided
SELECT paxos_confirm_consensus('p/b', 'acc', 5, 20, 'val-s', 'S');
SELECT min_proposal_num, proposer_id, value_id, value, accepted_proposal_num,
       accepted_proposer_id, consensus
FROM pgp_metadata.round WHERE group_id = 'acc' AND round_num = 5;

-- explicit learn of another round; learning it twice is harmless
SELECT paxos_confirm_consensus('p/d', 'acc', 3, 2, 'val-d', 'D');
SELECT paxos_confirm_consensus('p/d', 'acc', 3, 2, 'val-d', 'D');
-- learning a different value for a decided round is reported, not applied
SELECT paxos_confirm_consensus('p/e', 'acc', 3, 9, 'val-e', 'E');
SELECT round_num, value_id, value, consensus
FROM pgp_metadata.round WHERE group_id = 'acc' AND round_num = 3;

-- the decided log, as copied by catching-up nodes
SELECT * FROM paxos_decided_rounds('acc', 1, 10);
SELECT paxos_max_accepted_round('acc'), paxos_max_accepted_round('acc', false);

-- a standing promise (a leader's phase 1): its ballot for this round and
-- every later one, granted with what phase 1b reports of this round
SELECT promised, min_proposal_num, proposer_id, max_round_num, standing
FROM paxos_request_standing_prepare('L/a', 'acc', 20, 50);
SELECT from_round, proposal_num, proposer_id
FROM pgp_metadata.standing_promise WHERE group_id = 'acc';
-- it binds rounds it covers that have no row yet: lower ballots are refused
SELECT promised, min_proposal_num, proposer_id FROM paxos_request_prepare('x', 'acc', 25, 40);
SELECT accepted, min_proposal_num, proposer_id
FROM paxos_request_accept('x', 'acc', 30, 49, 'val-x', 'X');
-- the leader skips phase 1: accepted, one row, nothing promised ahead
-- (nor in round 20 itself: the standing promise covers it)
SELECT accepted FROM paxos_request_accept('L/a', 'acc', 30, 50, 'val-l', 'L');
SELECT round_num, min_proposal_num, proposer_id, value_id
FROM pgp_metadata.round WHERE group_id = 'acc' AND round_num >= 20 ORDER BY round_num;
-- rounds below it are free
SELECT accepted FROM paxos_request_accept('x', 'acc', 19, 1, 'val-x', 'X');
-- granted once per ballot; a higher ballot wins a round from it
SELECT promised, standing FROM paxos_request_standing_prepare('L/a', 'acc', 31, 50);
SELECT promised FROM paxos_request_prepare('q', 'acc', 32, 60);
SELECT accepted, min_proposal_num, proposer_id
FROM paxos_request_accept('L/a', 'acc', 32, 50, 'val-l2', 'L2');
-- a higher standing promise takes over, and keeps the rounds covered before
SELECT promised, max_round_num, standing FROM paxos_request_standing_prepare('L/b', 'acc', 40, 70);
SELECT from_round, proposal_num, proposer_id
FROM pgp_metadata.standing_promise WHERE group_id = 'acc';
SELECT accepted, min_proposal_num, proposer_id
FROM paxos_request_accept('L/a', 'acc', 25, 50, 'val-l3', 'L3');
-- granted from a round with accepted rounds above it: max_round_num says
-- so, and the proposer must not skip phase 1 there
SELECT promised, max_round_num, standing FROM paxos_request_standing_prepare('L/c', 'acc', 10, 80);
SELECT from_round, proposal_num FROM pgp_metadata.standing_promise WHERE group_id = 'acc';

SELECT paxos_leave_group('acc');
SELECT count(*) FROM pgp_metadata.round WHERE group_id = 'acc';
SELECT count(*) FROM pgp_metadata.standing_promise WHERE group_id = 'acc';
