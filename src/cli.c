/* placeholder until the command table lands */
int herald_main(int argc, char **argv);
int
herald_main(int argc, char **argv)
{
	(void)argc; (void)argv;
	return 0;
}
