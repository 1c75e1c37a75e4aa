#!/usr/bin/perl
# sisimai_diff.pl - a second opinion on herald's bounce verdicts: Debian's
# sisimai 4.25 (libsisimai-perl) against `herald bounce --explain` over the
# same messages.  Run by bench/sisimai_diff.sh, which picks the files,
# runs herald and installs the package; usable alone:
#
#   bench/sisimai_diff.pl --herald HERALD.jsonl [--expected TSV] [--json]
#                         [--all] [--label PATH=NAME]... FILE...
#
#   --herald F     herald's JSON lines for the same FILEs (one per
#                  recipient: file, recipient, status, reason, class, ...;
#                  "file" as given on its command line, the same strings
#                  as FILE here)
#   --expected T   a corpus expected.tsv (file, recipient, status, reason,
#                  hardbounce: sisimai 5.1's verdicts), whose reason is
#                  shown as a third column; its "file" is matched against
#                  the FILE name relative to the TSV's directory
#   --all          print the rows that agree too
#   --json         also one JSON line of the totals at the end
#
# For each FILE, Sisimai->make(FILE, delivered => 1) gives one record per
# recipient (reason, softbounce 1/0/-1, deliverystatus, replycode).  Records
# of both sides are paired per file by address (case-insensitive); what is
# left over is paired in order, the rest stands alone.  Compared:
#   reason  the strings;
#   class   sisimai's: feedback -> complaint, vacation -> autoreply,
#           delivered -> delivered, softbounce 0 -> hard, 1 -> soft, else
#           "?"; herald's class, with "delayed" counted as soft.
# A disagreement is marked
#   [newer]  herald's reason is one sisimai added after 4.25 (authfailure,
#            badreputation, failedstarttls, notcompliantrfc, ratelimited,
#            requireptr, speeding, suppressed, emailtoolarge): 4.25 cannot
#            say it, so the difference is one of vocabulary;
#   [not-sisimai] herald's reason is in no sisimai vocabulary;
#   [5.1=herald] the corpus's expected (sisimai 5.1) reason is herald's:
#            4.25 is the odd one out;
#   [no-4.25-parser] sisimai found nothing in a corpus file
#            lhost-NAME-NN.eml and 4.25 has no Sisimai::Lhost module NAME
#            (e.g. DragonFly, added later);
#   [class]  the classes differ.
# Changes nothing; reads only the files named.
use strict;
use warnings;
use Getopt::Long;
use JSON::PP;
use File::Spec;
use Encode ();
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my ($herald_out, $expected, $show_all, $want_json);
GetOptions('herald=s' => \$herald_out, 'expected=s' => \$expected,
           'all' => \$show_all, 'json' => \$want_json)
    or die "usage: sisimai_diff.pl --herald F [--expected TSV] [--all] [--json] FILE...\n";
die "sisimai_diff.pl: --herald F is required\n" unless defined $herald_out;
my @files = @ARGV;

require Sisimai;
require Sisimai::Reason;
my %v425 = map { lc($_) => 1 } @{ Sisimai::Reason->index };
$v425{$_} = 1 for qw(undefined delivered feedback vacation onhold);
my %newer = map { $_ => 1 }
    qw(authfailure badreputation failedstarttls notcompliantrfc ratelimited
       requireptr speeding suppressed emailtoolarge);
my $version = Sisimai->version;
# The MTA modules 4.25 has: a corpus file lhost-NAME-NN.eml whose NAME is
# not among them cannot be read by 4.25 (it came later).
my %lhost425;
for my $d (@INC) {
    next unless -d "$d/Sisimai/Lhost";
    opendir(my $dh, "$d/Sisimai/Lhost") or next;
    for my $n (readdir $dh) { $lhost425{lc $1} = 1 if $n =~ /\A(\w+)\.pm\z/ }
    closedir $dh;
}

# sisimai's verdicts, file by file.
my (%sis, %sis_err);
for my $f (@files) {
    my $list = eval {
        local $SIG{__WARN__} = sub { };
        Sisimai->make($f, delivered => 1);
    };
    if ($@) {
        (my $e = $@) =~ s/\s+\z//;
        $sis_err{$f} = $e;
        $sis{$f} = [];
        next;
    }
    $sis{$f} = [];
    for my $d (@{ $list // [] }) {
        my $reason = $d->reason // '';
        my $sb = $d->softbounce;
        $sb = '' unless defined $sb;
        my $cls = $reason eq 'feedback'  ? 'complaint'
                : $reason eq 'vacation'  ? 'autoreply'
                : $reason eq 'delivered' ? 'delivered'
                : $sb eq '0' ? 'hard' : $sb eq '1' ? 'soft' : '?';
        push @{ $sis{$f} }, {
            recipient => ($d->recipient ? $d->recipient->address : '') // '',
            reason    => $reason,
            class     => $cls,
            bounce    => $sb eq '0' ? 'hardbounce' : $sb eq '1' ? 'softbounce' : '-',
            status    => $d->deliverystatus // '',
            replycode => $d->replycode // '',
            agent     => $d->smtpagent // '',
        };
    }
}

# herald's, from its JSON lines.
my (%her, %her_seen);
open(my $hf, '<', $herald_out) or die "sisimai_diff.pl: $herald_out: $!\n";
while (my $line = <$hf>) {
    next unless $line =~ /\S/;
    # Bytes in, bytes out: herald writes UTF-8, sisimai gives octets too.
    my $o = eval { JSON::PP->new->utf8(0)->decode($line) }
        or die "sisimai_diff.pl: not JSON in $herald_out: $line";
    my $f = $o->{file} // '';
    $her_seen{$f} = 1;
    $her{$f} //= [];
    next if ($o->{recipient} // '') eq '' && ($o->{class} // '') eq 'none';
    my $c = $o->{class} // '';
    push @{ $her{$f} }, {
        recipient => $o->{recipient} // '',
        reason    => $o->{reason} // '',
        class     => $c eq 'delayed' ? 'soft' : $c,
        shown     => $c,
        status    => $o->{status} // '',
        shape     => $o->{shape} // '',
    };
}
close $hf;

# sisimai 5.1's verdicts from the corpus table, when given.
my %exp;
my $exp_dir;
if (defined $expected) {
    $exp_dir = abs_path(dirname($expected));
    open(my $ef, '<:encoding(UTF-8)', $expected) or die "sisimai_diff.pl: $expected: $!\n";
    while (my $line = <$ef>) {
        chomp $line;
        next if $line eq '' || $line =~ /^file\t/;
        my ($file, $rcpt, $st, $reason) = split /\t/, $line;
        push @{ $exp{$file} }, { recipient => lc($rcpt // ''), reason => $reason // '' };
    }
    close $ef;
}
sub expected_reason {
    my ($f, $rcpt) = @_;
    return '' unless defined $exp_dir;
    my $abs = abs_path($f) // return '';
    my $rel = File::Spec->abs2rel($abs, $exp_dir);
    return '' if $rel =~ m{^\.\./};
    for my $e (@{ $exp{$rel} // [] }) {
        return $e->{reason} if $e->{recipient} eq lc($rcpt);
    }
    return '';
}

# Characters, not bytes, for the columns (the strings are UTF-8 octets).
sub dlen {
    my $d = eval { Encode::decode('UTF-8', "$_[0]", Encode::FB_CROAK()) };
    return defined $d ? length $d : length $_[0];
}

# Pair, compare, print.
my %t = (files => scalar(@files), pairs => 0, reason_agree => 0, reason_disagree => 0,
         class_agree => 0, class_disagree => 0, only_sisimai => 0, only_herald => 0,
         newer => 0, not_sisimai => 0, v51_herald => 0, disagree_not_vocab => 0,
         sisimai_nothing => 0, no_parser => 0, v51_herald_only => 0, herald_nothing => 0, sisimai_errors => scalar(keys %sis_err));
my @rows;
for my $f (@files) {
    my @s = @{ $sis{$f} };
    my @h = @{ $her{$f} // [] };
    $t{sisimai_nothing}++ unless @s;
    $t{herald_nothing}++ unless @h;
    my (@pairs, %hused);
    my @sleft;
    for my $s (@s) {
        my $k;
        for my $i (0 .. $#h) {
            next if $hused{$i};
            if (lc($h[$i]{recipient}) eq lc($s->{recipient})) { $k = $i; last }
        }
        if (defined $k) { $hused{$k} = 1; push @pairs, [$s, $h[$k]] }
        else { push @sleft, $s }
    }
    my @hleft = map { $h[$_] } grep { !$hused{$_} } 0 .. $#h;
    while (@sleft && @hleft) { push @pairs, [shift @sleft, shift @hleft] }
    push @pairs, [$_, undef] for @sleft;
    push @pairs, [undef, $_] for @hleft;

    for my $p (@pairs) {
        my ($s, $h) = @$p;
        my $rcpt = $s ? $s->{recipient} : $h->{recipient};
        if ($h && $s && lc($h->{recipient}) ne lc($s->{recipient})) {
            $rcpt = "$s->{recipient} / herald: $h->{recipient}";
        }
        my $x = '';
        $x = expected_reason($f, $s->{recipient}) if $s;
        $x = expected_reason($f, $h->{recipient}) if $x eq '' && $h;
        my (@marks, $ragree, $cagree);
        if ($s && $h) {
            $t{pairs}++;
            $ragree = $s->{reason} eq $h->{reason};
            $cagree = $s->{class} eq $h->{class};
            $t{$ragree ? 'reason_agree' : 'reason_disagree'}++;
            $t{$cagree ? 'class_agree' : 'class_disagree'}++;
            if (!$ragree) {
                if ($newer{$h->{reason}}) { push @marks, '[newer]'; $t{newer}++ }
                elsif (!$v425{$h->{reason}}) { push @marks, '[not-sisimai]'; $t{not_sisimai}++ }
                if ($x ne '' && $x eq $h->{reason}) { push @marks, '[5.1=herald]'; $t{v51_herald}++ }
                $t{disagree_not_vocab}++ unless $newer{$h->{reason}};
            }
        } elsif ($s) {
            $t{only_sisimai}++;
        } else {
            $t{only_herald}++;
            my ($b) = $f =~ m{(?:\A|/)lhost-([a-z0-9]+)-\d+\.eml\z};
            if (!@s && defined $b && !$lhost425{$b}) {
                push @marks, '[no-4.25-parser]';
                $t{no_parser}++;
            }
            if ($x ne '' && $x eq $h->{reason}) { push @marks, '[5.1=herald]'; $t{v51_herald_only}++ }
        }
        next if $s && $h && $ragree && $cagree && !$show_all;
        push @rows, [
            $f, $rcpt,
            $s ? sprintf('%s %s %s', $s->{reason}, $s->{bounce}, $s->{status} || '-') : '(no record)',
            $h ? sprintf('%s %s %s', $h->{reason}, $h->{shown}, $h->{status} || '-') : '(no record)',
            $x eq '' ? '' : "5.1: $x",
            join(' ', ($s && $h && !$cagree ? '[class]' : ()), @marks),
        ];
    }
}

printf "sisimai %s against herald, %d files%s\n", $version, scalar(@files),
    $show_all ? '' : ' (rows where both agree on reason and class left out; --all shows them)';
if (@rows) {
    my @head = ('file', 'recipient', "sisimai $version (reason bounce status)",
                'herald (reason class status)', 'corpus', 'marks');
    my @w = map { dlen($_) } @head;
    for my $r (@rows) {
        for my $i (0 .. $#$r) { $w[$i] = dlen($r->[$i]) if dlen($r->[$i]) > $w[$i] }
    }
    $w[$_] = 44 for grep { $w[$_] > 44 } 0, 1;
    my $line = sub {
        my @c = @_;
        my $out = '';
        for my $i (0 .. $#c - 1) {
            $out .= $c[$i] . (' ' x ($w[$i] - dlen($c[$i]) + 2));
        }
        ($out .= $c[-1]) =~ s/ +\z//;
        print "$out\n";
    };
    $line->(@head);
    for my $r (@rows) {
        my @c = @$r;
        $c[$_] = dlen($c[$_]) > 44 ? '...' . substr($c[$_], -41) : $c[$_] for 0, 1;
        $line->(@c);
    }
} else {
    print "no disagreements\n";
}
for my $f (sort keys %sis_err) {
    print "sisimai failed on $f: $sis_err{$f}\n";
}
printf "recipients paired: %d   reason: %d agree, %d disagree   class: %d agree, %d disagree\n",
    @t{qw(pairs reason_agree reason_disagree class_agree class_disagree)};
printf "reason disagreements: %d herald reason newer than 4.25 [newer], %d not sisimai's [not-sisimai], "
     . "%d where sisimai 5.1 (corpus) says herald's [5.1=herald]; %d not explained by vocabulary\n",
    @t{qw(newer not_sisimai v51_herald disagree_not_vocab)};
printf "only sisimai has the recipient: %d   only herald: %d (%d in files of an MTA 4.25 has no "
     . "module for [no-4.25-parser]; %d where sisimai 5.1 says herald's reason)\n"
     . "files sisimai finds nothing in: %d   herald nothing: %d\n",
    @t{qw(only_sisimai only_herald no_parser v51_herald_only sisimai_nothing herald_nothing)};
if ($want_json) {
    my %j = (%t, sisimai_version => $version);
    print JSON::PP->new->canonical->encode(\%j), "\n";
}
exit 0;
