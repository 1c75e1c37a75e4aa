# herald.bash - bash completion for herald(1): commands, their verbs and
# options (read from `herald COMMAND --help`, so they never fall out of
# step), list names and issue ids (read from the database of the
# --config given, or $HERALD_CONFIG, or ./herald.conf).
# Installed as share/bash-completion/completions/herald.

_herald_config_args() {
	local i
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == --config ]]; then
			printf '%s\n' --config "${COMP_WORDS[i + 1]}"
			return
		fi
	done
}

_herald() {
	local cur prev cmd verb i words
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	cmd="" verb=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--config|--now|--log-format) ((i++)) ;;
		-*) ;;
		*) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; elif [[ -z $verb ]]; then verb=${COMP_WORDS[i]}; fi ;;
		esac
	done
	mapfile -t cfg < <(_herald_config_args)
	case $prev in
	--config|--out|--html|--maildir|--secret-file|--welcome|--backup)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--log-format)
		COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
	--list)
		COMPREPLY=($(compgen -W "$(herald "${cfg[@]}" list ls --json 2>/dev/null |
			sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')" -- "$cur")); return ;;
	esac
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--config --quiet --now --log-format --help --version" -- "$cur"))
		else
			words=$(herald --help 2>/dev/null | sed -n '/^commands:/,$s/^  \([a-z]*\) .*/\1/p')
			COMPREPLY=($(compgen -W "$words help" -- "$cur"))
		fi
		return
	fi
	local usage
	usage=$(herald "$cmd" --help 2>/dev/null | sed -n 's/^\(usage:\)\{0,1\} *herald '"$cmd"' //p')
	if [[ -z $verb && $cur != -* ]]; then
		words=$(printf '%s\n' "$usage" | awk '{print $1}' | grep -v '^[-[]' | grep -v '[A-Z]' | sort -u)
		if [[ -n $words ]]; then
			COMPREPLY=($(compgen -W "$words" -- "$cur"))
			return
		fi
	fi
	if [[ $cur == -* ]]; then
		if [[ -n $verb ]]; then
			usage=$(printf '%s\n' "$usage" | grep "^$verb\b")
		fi
		words=$(printf '%s\n' "$usage" | grep -o -- '--[a-z0-9-]*' | sort -u)
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
		return
	fi
	# an ID: the issues, newest last
	if printf '%s\n' "$usage" | grep -q "^$verb ID"; then
		COMPREPLY=($(compgen -W "$(herald "${cfg[@]}" issue ls --json 2>/dev/null |
			sed -n 's/.*"id": *\([0-9]*\).*/\1/p')" -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _herald herald
